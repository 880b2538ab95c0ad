"""Sources are read whole before anything is stored: structure kept, every problem named with its line."""

import io

import pytest

from knowledge.chunking import MAX_PASSAGE_WORDS, passages, windows
from knowledge.documents import DocumentRejected, parse_text, parse_upload
from knowledge.models import SourceKind

LIMIT = 1_000_000

FAQ = """# Acme Shoes — FAQ

Acme Shoes is an online shoe store.

## Shipping

### How much does shipping cost?
Standard shipping is **free on orders over $50**; otherwise it costs **$4.95**.

### Where do you ship?
We ship to the [United States](https://example.com/us) and Canada only.

## Returns

### What is your return policy?
- Within **30 days** of delivery
- Unworn, in the original box
"""


def problems(error: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in error.value.problems]


def test_it_splits_markdown_along_its_headings_and_drops_the_markup():
    document = parse_upload(FAQ.encode(), "faq.md", LIMIT)
    assert document.kind == SourceKind.MARKDOWN
    assert document.title == "Acme Shoes — FAQ"
    titles = [" › ".join(s.path) for s in document.sections]
    assert titles == ["Acme Shoes — FAQ", "Shipping › How much does shipping cost?", "Shipping › Where do you ship?",
                      "Returns › What is your return policy?"]
    assert document.sections[1].text == "Standard shipping is free on orders over $50; otherwise it costs $4.95."
    assert document.sections[2].text == "We ship to the United States and Canada only."
    assert document.sections[3].text == "- Within 30 days of delivery\n- Unworn, in the original box"


def test_it_reads_html_headings_and_skips_scripts_styles_and_navigation():
    html = """<html><head><title>Help centre</title><style>p{color:red}</style></head><body>
      <nav><a href="/">Home</a> Shop</nav><h1>Help</h1><h2>Delivery</h2><p>Express costs &dollar;12.95.</p>
      <script>alert("steal")</script><ul><li>Tracking by email</li><li>No pickup</li></ul>
      <footer>© Acme</footer></body></html>"""
    document = parse_upload(html.encode(), "help.html", LIMIT)
    assert document.title == "Help"  # the page's h1; its <title> only when it has none
    [section] = document.sections
    assert section.path == ["Delivery"]
    assert "Express costs $12.95." in section.text and "- Tracking by email" in section.text
    assert "alert" not in document.text and "Home" not in section.text and "© Acme" not in section.text


def test_it_reads_question_and_answer_pairs_from_csv_and_jsonl():
    csv_text = 'question,answer,url\n"How long is delivery?","3–5 business days.",https://acme.example/d\n'
    [pair] = parse_upload(csv_text.encode(), "qa.csv", LIMIT).sections
    assert (pair.question, pair.text, pair.url) == ("How long is delivery?", "3–5 business days.",
                                                    "https://acme.example/d")
    jsonl = '{"question": "Do gift cards expire?", "answer": "Never.", "section": "Payment"}\n'
    [pair] = parse_upload(jsonl.encode(), "qa.jsonl", LIMIT).sections
    assert pair.path == ["Payment", "Do gift cards expire?"] and pair.text == "Never."


def test_it_refuses_a_qa_csv_without_its_columns_naming_them_and_the_header_line():
    with pytest.raises(DocumentRejected) as error:
        parse_upload(b"q,a\nHi,Hello\n", "qa.csv", LIMIT)
    [problem] = problems(error)
    assert problem.startswith("line 1:") and "question and answer" in problem and "'q', 'a'" in problem


def test_it_lists_every_bad_qa_row_with_its_line():
    text = 'question,answer\n"Ok?","Yes"\n"","No question"\n"No answer",""\n"Bad url","x",\n'
    with pytest.raises(DocumentRejected) as error:
        parse_upload(text.encode(), "qa.csv", LIMIT)
    found = problems(error)
    assert "line 3: the question is empty" in found
    assert "line 4: the answer is empty" in found
    assert any(p.startswith("line 5:") for p in found)


def test_it_names_bad_jsonl_lines():
    text = '{"question": "a", "answer": "b"}\nnot json\n{"question": "c"}\n[1, 2]\n{"question": 3, "answer": "d"}\n'
    with pytest.raises(DocumentRejected) as error:
        parse_upload(text.encode(), "qa.jsonl", LIMIT)
    found = problems(error)
    assert [p.split(":")[0] for p in found] == ["line 2", "line 3", "line 4", "line 5"]
    assert "missing 'answer'" in found[1]


@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"", "faq.md", "The file is empty."),
    (b"   \n\n", "faq.txt", "The file is empty."),
    (b"# Title\n\n## Only headings\n", "faq.md", "only headings"),
    (b"hello\x00world", "faq.txt", "binary file"),
    ("# FAQ\n\ncaf\u00e9".encode("latin-1"), "faq.md", "not UTF-8"),
    (b"\x01\x02\x03\x04 some text \x05\x06\x07\x08\x0b\x0e\x0f", "faq.txt", "binary"),
    (b"hello", "faq.docx", "not a supported kind of file"),
    (b"%PDF-1.7 this is not really a pdf", "guide.pdf", "cannot be read"),
    (b"just text", "guide.pdf", "not a PDF"),
])
def test_it_refuses_unusable_files_with_a_clear_reason(data, name, expected):
    with pytest.raises(DocumentRejected) as error:
        parse_upload(data, name, LIMIT)
    assert expected in " ".join(problems(error))


def test_it_names_the_line_of_a_wrong_encoding():
    data = "# FAQ\n\nline two\nline three caf\u00e9\n".encode("latin-1")
    with pytest.raises(DocumentRejected) as error:
        parse_upload(data, "faq.md", LIMIT)
    assert problems(error)[0].startswith("line 4:")


def test_it_refuses_files_over_the_limit_before_reading_them():
    with pytest.raises(DocumentRejected) as error:
        parse_upload(b"x" * 2001, "big.txt", 2000)
    assert "limit" in problems(error)[0] and "KNOWLEDGE_MAX_BYTES" in problems(error)[0]


def _pdf(text: str, encrypt: str | None = None) -> bytes:
    """A one-page PDF with real text, written by hand (a content stream with a Tj operator)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
        {NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    if encrypt:
        writer.encrypt(user_password=encrypt, owner_password=encrypt, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_it_extracts_the_text_of_a_pdf_page_by_page():
    document = parse_upload(_pdf("Returns are free within 30 days."), "policy.pdf", LIMIT)
    assert document.kind == SourceKind.PDF
    assert document.sections[0].path == ["policy", "page 1"]
    assert "Returns are free within 30 days." in document.sections[0].text


def test_it_refuses_an_encrypted_pdf():
    with pytest.raises(DocumentRejected) as error:
        parse_upload(_pdf("Secret", encrypt="hunter2"), "secret.pdf", LIMIT)
    assert "encrypted" in problems(error)[0]


def test_it_refuses_a_pdf_without_text():
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(DocumentRejected) as error:
        parse_upload(buffer.getvalue(), "scan.pdf", LIMIT)
    assert "No text could be extracted" in problems(error)[0]


def test_it_keeps_short_sections_whole_and_cuts_long_ones_into_overlapping_windows():
    sentences = [f"Sentence number {i} says something about fact {i}." for i in range(60)]
    long_text = " ".join(sentences)
    document = parse_text(f"# Guide\n\n## Care\n\n{long_text}\n\n## Short\n\nJust this.\n", SourceKind.MARKDOWN)
    drafts = passages(document.sections)
    care = [d for d in drafts if d.title.startswith("Care")]
    assert len(care) > 1 and all(d.title.endswith(f"({i}/{len(care)})") for i, d in enumerate(care, start=1))
    assert all(len(d.text.split()) <= MAX_PASSAGE_WORDS for d in care)
    for sentence in sentences:  # every sentence whole in at least one window
        assert any(sentence in d.text for d in care)
    for first, second in zip(care, care[1:], strict=False):  # consecutive windows overlap
        assert first.text.split("\n")[-1] in second.text
    assert [d.text for d in drafts if d.title == "Short"] == ["Just this."]


def test_it_cuts_a_single_overlong_sentence_by_words():
    pieces = windows(" ".join(f"w{i}" for i in range(300)), size=100, overlap=20)
    assert all(len(p.split()) <= 100 for p in pieces)
    assert "w299" in pieces[-1]


def test_a_hard_wrapped_markdown_paragraph_is_one_line_and_lists_and_code_keep_theirs():
    text = ("# Help\n\n## Returns\n\nReturns are\nfree: start a return under \"My orders\".\n\n"
            "- first item\n  continued\n- second item\n\n```\ncode line 1\ncode line 2\n```\n")
    content = parse_text(text, SourceKind.MARKDOWN).sections[0].text
    assert 'Returns are free: start a return under "My orders".' in content
    assert "- first item continued\n- second item" in content
    assert "code line 1\ncode line 2" in content


def test_emphasis_across_a_wrapped_line_is_removed_with_the_rest():
    text = ("# Help\n\n## Damaged item\n\nContact us. We **send a replacement within 2\nbusiness days** and "
            "a _free\nlabel_.\n")
    content = parse_text(text, SourceKind.MARKDOWN).sections[0].text
    assert content == "Contact us. We send a replacement within 2 business days and a free label."
