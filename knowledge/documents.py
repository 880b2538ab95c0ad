"""Read an uploaded or pasted knowledge source completely before anything is stored.

A file is decoded, validated and split into sections along its own structure (Markdown and HTML
headings, PDF pages, Q&A rows); every problem is reported (with its line where there is one) and a
file with any problem is refused whole. Pure Python: the web process runs this; embedding is done
later by an inference worker.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser

from knowledge.models import SourceKind

MAX_PROBLEMS = 50
MAX_QA_FIELD_CHARS = 20_000
BINARY_CONTROL_SHARE = 0.02  # above this share of control characters a "text" file is binary

_EXTENSIONS = {
    ".md": SourceKind.MARKDOWN, ".markdown": SourceKind.MARKDOWN, ".txt": SourceKind.TEXT,
    ".text": SourceKind.TEXT, ".html": SourceKind.HTML, ".htm": SourceKind.HTML, ".pdf": SourceKind.PDF,
    ".csv": SourceKind.QA_CSV, ".jsonl": SourceKind.QA_JSONL, ".ndjson": SourceKind.QA_JSONL,
}
ACCEPTED_EXTENSIONS = tuple(_EXTENSIONS)


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class DocumentRejected(Exception):
    """The file cannot be used; `problems` says why, each with its line where there is one."""

    def __init__(self, problems: list[Problem], truncated: int = 0) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.truncated = truncated


@dataclass
class Section:
    """A piece of the document's structure: its heading path and its text (or a Q&A pair)."""

    path: list[str]
    text: str
    question: str = ""
    url: str = ""


@dataclass
class ParsedDocument:
    kind: str
    title: str
    text: str  # the whole text as extracted: what an edit starts from
    sections: list[Section] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.truncated = 0

    def add(self, line: int | None, message: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(line, message))
        else:
            self.truncated += 1

    def raise_if_any(self) -> None:
        if self.items:
            raise DocumentRejected(self.items, self.truncated)


def _reject(message: str, line: int | None = None) -> DocumentRejected:
    return DocumentRejected([Problem(line, message)])


def kind_for(filename: str) -> str:
    lower = filename.lower()
    for extension, kind in _EXTENSIONS.items():
        if lower.endswith(extension):
            return kind
    raise _reject(f"{filename!r} is not a supported kind of file: upload Markdown (.md), plain text (.txt), HTML, "
                  "PDF, or question–answer pairs as CSV or JSONL.")


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise _reject(f"The file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB (KNOWLEDGE_MAX_BYTES).")


def decode_text(data: bytes) -> str:
    """UTF-8 text (a BOM is allowed), refusing binary files and other encodings with the line at fault."""
    nul = data.find(b"\x00")
    if nul != -1:
        raise _reject(f"This is a binary file, not text (a NUL byte at offset {nul}).", data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _reject(f"The file is not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} cannot be "
                      "decoded. Save it as UTF-8 and upload it again.", data.count(b"\n", 0, error.start) + 1) from None
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    if text and controls / len(text) > BINARY_CONTROL_SHARE:
        raise _reject("This looks like a binary file, not text (it is full of control characters).")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_upload(data: bytes, filename: str, limit: int) -> ParsedDocument:
    """Validate and split a whole file; raises DocumentRejected listing every problem."""
    kind = kind_for(filename)
    check_size(len(data), limit)
    if not data.strip():
        raise _reject("The file is empty.")
    default_title = re.sub(r"\.[A-Za-z0-9]+$", "", filename.rsplit("/", 1)[-1]) or "Untitled"
    if kind == SourceKind.PDF:
        return parse_pdf(data, default_title)
    return parse_text(decode_text(data), kind, default_title)


def parse_text(text: str, kind: str, default_title: str = "Untitled") -> ParsedDocument:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise _reject("There is no text in it.")
    if kind == SourceKind.QA_CSV:
        return _parse_qa_csv(text, default_title)
    if kind == SourceKind.QA_JSONL:
        return _parse_qa_jsonl(text, default_title)
    if kind == SourceKind.HTML:
        return _parse_html(text, default_title)
    if kind in (SourceKind.MARKDOWN, SourceKind.PASTED):
        return _parse_markdown(text, kind, default_title)
    return ParsedDocument(kind, default_title, text, _paragraph_sections(text, [default_title]))


# --- Markdown ---------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def plain_markdown(text: str) -> str:
    """Markdown inline markup removed: **bold** -> bold, [text](url) -> text, images dropped."""
    text = _LINK.sub(lambda m: "" if m.group(0).startswith("!") else m.group(1), text)
    previous = None
    while previous != text:
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return text


# A line that starts its own block: it is never joined to the line above (see _parse_markdown).
_BLOCK_START = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|\||>)")


def _parse_markdown(text: str, kind: str, default_title: str) -> ParsedDocument:
    lines = text.split("\n")
    sections: list[Section] = []
    headings: list[tuple[int, str]] = []
    body: list[str] = []
    title = ""
    in_code = False
    prose_open = False  # the last body line is prose a wrapped line continues

    def flush() -> None:
        # Inline markup is removed once a paragraph's wrapped lines are joined: **bold** may span them.
        content = "\n".join(plain_markdown(line) for line in body).strip()
        if content:
            path = [name for _, name in headings] or [title or default_title]
            sections.append(Section(path, content))
        body.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip().startswith("```"):
            in_code = not in_code
            prose_open = False
            index += 1
            continue
        atx = None if in_code else _HEADING.match(line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        heading: tuple[int, str] | None = None
        if atx is not None:
            heading = (len(atx.group(1)), atx.group(2))
        elif not in_code and line.strip() and _SETEXT.match(following) \
                and not line.lstrip().startswith(("-", "*", "|", ">")):
            heading = (1 if following.startswith("=") else 2, line.strip())
            index += 1
        if heading is not None:
            flush()
            level, name = heading[0], plain_markdown(heading[1]).strip()
            if level == 1 and not title:
                title = name
            headings = [(lvl, n) for lvl, n in headings if lvl < level] + [(level, name)]
        else:
            text_line = line.rstrip()
            # Markdown's soft line break is a space: a paragraph hard-wrapped in the file is one line of
            # text (else a quote breaks mid-sentence and each half is embedded as a "sentence").
            if prose_open and text_line.strip() and not _BLOCK_START.match(text_line):
                body[-1] = body[-1].rstrip() + " " + text_line.strip()
            else:
                body.append(text_line)
            prose_open = not in_code and bool(text_line.strip()) and not text_line.lstrip().startswith("|")
        if heading is not None:
            prose_open = False
        index += 1
    flush()
    if not sections:
        raise _reject("There is no text in it, only headings.")
    # The document title leads every path only where it is the sole heading above (the intro).
    for section in sections:
        if len(section.path) > 1 and section.path[0] == title:
            section.path = section.path[1:]
    return ParsedDocument(kind, title or default_title, text, sections)


# --- plain text ---------------------------------------------------------------------------------


def _paragraph_sections(text: str, path: list[str]) -> list[Section]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not paragraphs:
        raise _reject("There is no text in it.")
    return [Section(list(path), paragraph) for paragraph in paragraphs]


# --- HTML ---------------------------------------------------------------------------------------

_BLOCK_TAGS = {"p", "div", "section", "article", "li", "tr", "br", "table", "ul", "ol", "dd", "dt", "blockquote",
               "pre", "main", "figure", "figcaption", "hr"}
_SKIPPED_TAGS = {"script", "style", "noscript", "template", "nav", "header", "footer", "svg", "form", "button",
                 "select", "iframe", "head"}


class _HtmlText(HTMLParser):
    """Headings and block text of an HTML page, in order; scripts, styles and navigation dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, str]] = []  # (heading level or 0, text)
        self.title = ""
        self._buffer: list[str] = []
        self._heading: int = 0
        self._skip = 0
        self._in_title = False

    def _flush(self) -> None:
        text = re.sub(r"[ \t\u00a0]+", " ", "".join(self._buffer)).strip()
        self._buffer.clear()
        if text:
            self.blocks.append((self._heading, text))

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if self._skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
        elif tag in _BLOCK_TAGS:
            self._flush()
            if tag == "li":
                self._buffer.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = 0
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if not self._skip:
            self._buffer.append(data.replace("\n", " "))

    def close(self) -> None:
        super().close()
        self._flush()


def _parse_html(text: str, default_title: str) -> ParsedDocument:
    parser = _HtmlText()
    try:
        parser.feed(text)
        parser.close()
    except Exception as error:  # html.parser is lenient; anything it still raises is a broken file
        raise _reject(f"The HTML cannot be read: {error}") from None
    if not any(level == 0 for level, _ in parser.blocks):
        raise _reject("There is no text in this HTML page (only markup, scripts or headings).")
    markdown_lines: list[str] = []
    for level, content in parser.blocks:
        markdown_lines.append(f"{'#' * level} {content}" if level else content)
        markdown_lines.append("")
    # The page's first <h1> names the document; its <title> (often "Page | Site") only when there is none.
    return _parse_markdown("\n".join(markdown_lines), SourceKind.HTML, parser.title.strip() or default_title)


# --- PDF ----------------------------------------------------------------------------------------


def parse_pdf(data: bytes, default_title: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    if not data.lstrip().startswith(b"%PDF-"):
        raise _reject("This is not a PDF file (it does not start with %PDF-).")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _reject("The PDF is encrypted with a password: remove the password and upload it again.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentRejected:
        raise
    except FileNotDecryptedError:
        raise _reject("The PDF is encrypted with a password: remove the password and upload it again.") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as error:
        raise _reject(f"The PDF cannot be read ({type(error).__name__}: {error}). It may be damaged.") from None
    except Exception as error:  # pypdf raises many kinds on broken files; the user needs one sentence
        raise _reject(f"The PDF cannot be read ({type(error).__name__}). It may be damaged.") from None
    if not any(page.strip() for page in pages):
        raise _reject("No text could be extracted from this PDF (is it a scan? Run OCR on it first).")
    title = default_title
    metadata = getattr(reader, "metadata", None)
    if metadata is not None and getattr(metadata, "title", None):
        title = str(metadata.title).strip() or default_title
    sections: list[Section] = []
    for number, page in enumerate(pages, start=1):
        cleaned = re.sub(r"[ \t]+", " ", page).strip()
        if cleaned:
            sections.extend(_paragraph_sections(cleaned, [title, f"page {number}"]))
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    return ParsedDocument(SourceKind.PDF, title, text, sections)


# --- Q&A pairs ------------------------------------------------------------------------------------

QA_COLUMNS = ("question", "answer")
QA_OPTIONAL_COLUMNS = ("section", "url")


def _qa_section(question: str, answer: str, section: str, url: str) -> Section:
    return Section([part for part in (section.strip(), question.strip()) if part], answer.strip(),
                   question=question.strip(), url=url.strip())


def _check_qa_fields(problems: _Problems, line: int, values: dict[str, str]) -> None:
    for column in QA_COLUMNS:
        if not values.get(column, "").strip():
            problems.add(line, f"the {column} is empty")
        elif len(values[column]) > MAX_QA_FIELD_CHARS:
            problems.add(line, f"the {column} is {len(values[column]):,} characters (at most {MAX_QA_FIELD_CHARS:,})")
    url = values.get("url", "").strip()
    if url and not re.match(r"^https?://\S+$", url):
        problems.add(line, f"the url {url[:80]!r} is not an http(s) address")


def _parse_qa_csv(text: str, default_title: str) -> ParsedDocument:
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as error:
        raise _reject(f"This is not valid CSV: {error}") from None
    header = [column.strip().lower() for column in rows[0]] if rows else []
    missing = [column for column in QA_COLUMNS if column not in header]
    if missing:
        found = ", ".join(repr(c) for c in header) or "nothing"
        raise _reject(f"The header needs the column{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                      f"(found {found}). Optional: {', '.join(QA_OPTIONAL_COLUMNS)}.", 1)
    problems = _Problems()
    sections: list[Section] = []
    reader = csv.reader(io.StringIO(text), strict=True)
    next(reader)
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.add(line, f"expected {len(header)} columns, found {len(row)}")
            continue
        values = dict(zip(header, row, strict=True))
        _check_qa_fields(problems, line, values)
        sections.append(_qa_section(values["question"], values["answer"], values.get("section", ""),
                                    values.get("url", "")))
    problems.raise_if_any()
    if not sections:
        raise _reject("There are no question–answer rows under the header.", 1)
    return ParsedDocument(SourceKind.QA_CSV, default_title, text, sections)


def _parse_qa_jsonl(text: str, default_title: str) -> ParsedDocument:
    problems = _Problems()
    sections: list[Section] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            problems.add(number, f"not valid JSON ({getattr(error, 'msg', error)})")
            continue
        if not isinstance(item, dict):
            problems.add(number, 'each line must be an object like {"question": "...", "answer": "..."}')
            continue
        missing = [column for column in QA_COLUMNS if column not in item]
        if missing:
            problems.add(number, f"missing {' and '.join(repr(m) for m in missing)}")
            continue
        wrong = [key for key in (*QA_COLUMNS, *QA_OPTIONAL_COLUMNS) if key in item and not isinstance(item[key], str)]
        if wrong:
            problems.add(number, f"{', '.join(repr(w) for w in wrong)} must be text")
            continue
        values = {key: item.get(key, "") for key in (*QA_COLUMNS, *QA_OPTIONAL_COLUMNS)}
        _check_qa_fields(problems, number, values)
        sections.append(_qa_section(values["question"], values["answer"], values["section"], values["url"]))
    problems.raise_if_any()
    if not sections:
        raise _reject("There are no question–answer lines in the file.")
    return ParsedDocument(SourceKind.QA_JSONL, default_title, text, sections)
