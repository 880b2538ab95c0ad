"""The dialogue label mask: the loss sits on exactly the assistant replies and their end token."""

from __future__ import annotations

import pytest

from tests.workers.training.conftest import SYSTEM, chat

MULTI_TURN = chat("Where is my order?", " It ships today.\nTracking follows by e-mail.",
                  "And returns?", "Yes — 30 days, free of charge.")
EXPECTED_MULTI_TURN = [" It ships today.\nTracking follows by e-mail.<|im_end|>",
                       "Yes — 30 days, free of charge.<|im_end|>"]


def labelled_runs(tokenizer, encoded) -> list[tuple[int, int]]:
    """[start, end) token ranges of consecutive labelled positions."""
    runs, start = [], None
    for i, label in enumerate([*encoded.labels, -100]):
        if label != -100 and start is None:
            start = i
        elif label == -100 and start is not None:
            runs.append((start, i))
            start = None
    return runs


def labelled_texts(tokenizer, encoded) -> list[str]:
    return [tokenizer.decode(encoded.input_ids[a:b]) for a, b in labelled_runs(tokenizer, encoded)]


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_chat_folder):
    from workers.models.loading import load_tokenizer

    return load_tokenizer(tiny_chat_folder)


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_folder):
    from workers.models.loading import load_tokenizer

    return load_tokenizer(smollm2_folder)


def encode(tokenizer, row, max_seq_length=512):
    from workers.training.data import encode_dialogue_row

    encoded, reason = encode_dialogue_row(tokenizer, row["messages"], max_seq_length)
    assert encoded is not None, reason
    return encoded


def test_it_labels_exactly_each_assistant_reply_and_its_end_token(tiny_tokenizer):
    assert labelled_texts(tiny_tokenizer, encode(tiny_tokenizer, MULTI_TURN)) == EXPECTED_MULTI_TURN


def test_it_labels_the_input_tokens_themselves(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, MULTI_TURN)
    assert all(label in (-100, token) for token, label in zip(encoded.input_ids, encoded.labels, strict=True))


def test_it_never_labels_the_assistant_header_or_the_newline_after_the_end_token(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, MULTI_TURN)
    for start, end in labelled_runs(tiny_tokenizer, encoded):
        assert tiny_tokenizer.decode(encoded.input_ids[:start]).endswith("<|im_start|>assistant\n")
        assert tiny_tokenizer.decode(encoded.input_ids[end:end + 1]) == "\n"


def test_it_keeps_the_end_token_although_it_is_the_pad_token(tiny_tokenizer):
    from workers.training.batching import collate

    end_of_turn = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tiny_tokenizer.pad_token_id == end_of_turn
    short, long = encode(tiny_tokenizer, chat("Hi", "Hello!")), encode(tiny_tokenizer, MULTI_TURN)
    batch = collate([short, long], tiny_tokenizer.pad_token_id, "dialogue")
    assert (batch.labels[0] == end_of_turn).sum() == 1  # the reply's end token, not the padding after it
    assert (batch.labels[0, short.length:] == -100).all()


def test_it_does_not_label_the_system_prompt_the_template_injects(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, chat("Hi", "Hello, how can I help?", system=None))
    assert "SmolLM" in tiny_tokenizer.decode(encoded.input_ids)
    assert labelled_texts(tiny_tokenizer, encoded) == ["Hello, how can I help?<|im_end|>"]


def test_it_labels_an_empty_reply_with_only_its_end_token(tiny_tokenizer):
    encoded = encode(tiny_tokenizer, chat("Say nothing.", "", "Now say hi.", "hi"))
    assert labelled_texts(tiny_tokenizer, encoded) == ["<|im_end|>", "hi<|im_end|>"]


def test_it_keeps_the_labelled_tokens_that_fit_when_truncating(tiny_tokenizer):
    full = encode(tiny_tokenizer, MULTI_TURN)
    first_reply_end = labelled_runs(tiny_tokenizer, full)[0][1]
    cut = encode(tiny_tokenizer, MULTI_TURN, max_seq_length=first_reply_end + 1)
    assert cut.length == first_reply_end + 1
    assert labelled_texts(tiny_tokenizer, cut) == [EXPECTED_MULTI_TURN[0]]


def test_it_drops_a_row_whose_replies_are_truncated_away(tiny_tokenizer):
    from workers.training.data import encode_dialogue

    long_system = chat("Hi", "Hello!", system=SYSTEM * 20)
    encoded, report = encode_dialogue(tiny_tokenizer, [long_system, MULTI_TURN], 64)
    assert len(encoded) == 1
    assert report.truncated_away == 1
    assert "beyond the maximum sequence length" in report.describe("training")


def test_it_reports_rows_dropped_by_truncation_as_an_event(make_spec):
    from tests.workers.training.conftest import RecordingCallbacks
    from workers.training.loop import run_training

    spec = make_spec(hyper={"max_seq_length": 64})
    spec.train_rows = [chat("Hi", "Hello!", system="Be brief.")] * 4 + [chat("Hi", "Hello!", system=SYSTEM * 20)]
    callbacks = RecordingCallbacks()
    run_training(spec, callbacks)
    warnings = [data for level, _, data in callbacks.events if level == "warning" and data]
    assert {"split": "training", "truncated_away": 1, "without_assistant": 0, "unlocatable": 0} in warnings


@pytest.mark.real_model
def test_it_labels_the_real_smollm2_template_exactly(smollm2_tokenizer):
    assert smollm2_tokenizer.pad_token == "<|im_end|>"
    assert labelled_texts(smollm2_tokenizer, encode(smollm2_tokenizer, MULTI_TURN)) == EXPECTED_MULTI_TURN


@pytest.mark.real_model
def test_it_leaves_the_real_smollm2_headers_and_newlines_unlabelled(smollm2_tokenizer):
    encoded = encode(smollm2_tokenizer, chat("Hi", "Hello!", "Bye", "See you soon."))
    runs = labelled_runs(smollm2_tokenizer, encoded)
    assert [smollm2_tokenizer.decode(encoded.input_ids[a:b]) for a, b in runs] == ["Hello!<|im_end|>",
                                                                                   "See you soon.<|im_end|>"]
    for start, end in runs:
        assert smollm2_tokenizer.decode(encoded.input_ids[:start]).endswith("<|im_start|>assistant\n")
        assert smollm2_tokenizer.decode(encoded.input_ids[end:end + 1]) == "\n"
