"""Incremental text: multi-byte characters are never split, stop strings are held back."""

from types import SimpleNamespace

from store.inference.protocol import GenerationRequest
from tests.workers.serving.helpers import RecordingSink
from workers.serving.generation import PrefixDecoder, Row, StopMatcher


def test_it_emits_multi_byte_characters_whole(tiny_chat_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_folder)
    text = "Héllo 日本語 😀 ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # byte-level pieces: some characters span several tokens
    sink = RecordingSink()
    lease = SimpleNamespace(entry=SimpleNamespace(tokenizer=tokenizer), adapter="__base__")
    row = Row(GenerationRequest("r", "m", [], max_tokens=len(ids), temperature=0), sink, lease, [1, 2, 3], set())
    for token in ids:
        row.accept(token)

    assert sink.result["finish_reason"] == "length"
    assert sink.text == text
    assert all("\ufffd" not in chunk for _, chunk, _ in sink.chunks)
    assert sum(n for _, _, n in sink.chunks) == len(ids)


def test_it_decodes_incrementally_without_a_rust_tokenizer(tiny_chat_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_folder)
    text = "Ünïcode — 日本語 😀!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = PrefixDecoder(tokenizer, [tokenizer.bos_token_id])
    pieces = [decoder.step(None, token) for token in ids]

    assert "".join(piece for piece in pieces if piece) == text
    assert None in pieces  # some tokens only complete a character together with the next one


def test_it_holds_back_text_that_could_start_a_stop_string():
    matcher = StopMatcher(["\nUser:"])
    assert matcher.feed("Sure thing") == ("Sure thing", False)
    assert matcher.feed("!\nUs") == ("!", False)
    assert matcher.feed("ually") == ("\nUsually", False)
    assert matcher.feed(" yes\nUser: hi") == (" yes", True)


def test_it_cuts_at_the_earliest_of_several_stop_strings():
    matcher = StopMatcher(["END", "STOP"])
    assert matcher.feed("abc STOP def END") == ("abc ", True)
    assert StopMatcher([]).feed("anything") == ("anything", False)
    assert StopMatcher("").feed("anything") == ("anything", False)
    assert StopMatcher("!").feed("hi! there") == ("hi", True)
