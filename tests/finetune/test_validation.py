"""Every class of bad file is reported with its line number and a precise reason."""

import json

import pytest
from django.test import override_settings

from finetune.validation import detect_task, validate_dataset


def chat(user="Hi", assistant="Hello!", system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return json.dumps({"messages": messages})


GOOD_CHATS = "\n".join(chat(f"question {i}", f"answer {i}") for i in range(6))


def problems(data: str | bytes, filename="data.jsonl", task=None) -> list[str]:
    report = validate_dataset(data.encode() if isinstance(data, str) else data, filename, task)
    return [str(p) for p in report.problems]


def test_it_accepts_a_valid_chat_file():
    report = validate_dataset(GOOD_CHATS.encode(), "chats.jsonl")
    assert report.ok and report.task == "dialogue" and len(report.rows) == 6
    assert report.stats["assistant_turns"] == 6


def test_it_reports_a_line_that_is_not_json():
    lines = GOOD_CHATS.split("\n")
    lines.insert(2, '{"messages": [oops')
    assert problems("\n".join(lines)) == ["line 3: not valid JSON (Expecting value at column 15)"]


def test_it_reports_missing_messages():
    assert problems(GOOD_CHATS + '\n{"prompt": "x"}', task="dialogue") == ['line 7: missing "messages"']


def test_it_reports_an_unknown_role():
    bad = json.dumps({"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]})
    assert problems(GOOD_CHATS + "\n" + bad) == [
        "line 7: message 1: unknown role 'tool' (use system, user or assistant)"]


def test_it_reports_empty_content():
    assert problems(GOOD_CHATS + "\n" + chat("Hi", "   ")) == ["line 7: message 2: empty content"]


def test_it_reports_a_chat_without_assistant_turn():
    bad = json.dumps({"messages": [{"role": "user", "content": "anyone?"}]})
    assert problems(bad + "\n" + GOOD_CHATS) == ["line 1: no assistant turn: nothing to learn from this example"]


def test_it_reports_every_problem_not_just_the_first():
    lines = GOOD_CHATS.split("\n") + ["nope", '{"messages": []}', chat("a", "")]
    assert [p.split(":")[0] for p in problems("\n".join(lines))] == ["line 7", "line 8", "line 9"]


SENTIMENT_CSV = "text,label\n" + "\n".join(
    f'"message {i}",{label}' for i, label in enumerate(["positive", "negative", "neutral"] * 3))


def test_it_accepts_a_valid_csv_and_counts_labels():
    report = validate_dataset(SENTIMENT_CSV.encode(), "s.csv")
    assert report.ok and report.task == "sentiment"
    assert report.stats["label_distribution"] == {"negative": 3, "neutral": 3, "positive": 3}
    assert report.labels == ["negative", "neutral", "positive"]


def test_it_reports_missing_text_and_label_columns():
    assert problems("body,sentiment\nx,positive\n", "s.csv") == [
        "line 1: the CSV header must have text and label columns; missing text, label (found: body, sentiment)"]


def test_it_reports_an_empty_label_with_its_line():
    assert problems(SENTIMENT_CSV + '\n"late again",\n', "s.csv") == ["line 11: empty label"]


def test_it_reports_the_physical_line_of_a_multiline_csv_row():
    data = SENTIMENT_CSV + '\n"first line\nsecond line",\n'
    assert problems(data, "s.csv") == ["line 11: empty label"]


def test_it_reports_missing_text_and_label_keys_in_jsonl():
    lines = [json.dumps({"text": f"t{i}", "label": "a" if i % 2 else "b"}) for i in range(6)]
    lines += [json.dumps({"label": "a"}), json.dumps({"text": "x"})]
    assert problems("\n".join(lines), task="sentiment") == ['line 7: missing "text"', 'line 8: missing "label"']


def test_it_reports_a_label_with_fewer_than_two_examples():
    assert problems(SENTIMENT_CSV + '\n"meh",mixed\n', "s.csv") == [
        "line 11: label 'mixed' has only 1 example; every label needs at least 2"]


def test_it_reports_bad_encoding_with_the_line():
    data = SENTIMENT_CSV.encode() + b'\n"caf\xe9 was cold",negative\n'
    offset = data.index(b"\xe9")
    assert problems(data, "s.csv") == [
        f"line 11: bad encoding: byte 0xe9 at offset {offset} is not valid UTF-8 (save the file as UTF-8)"]


def test_it_rejects_a_binary_file():
    assert problems(b"PK\x03\x04\x00\x00binary", "data.jsonl")[0].startswith("line 1: this is a binary file")


@override_settings(DATASET_MAX_LINE_CHARS=150)
def test_it_reports_a_line_that_is_too_long():
    long_line = chat("x" * 150, "y")
    data = GOOD_CHATS + "\n" + long_line
    assert problems(data) == [f"line 7: line too long: {len(long_line)} characters (limit 150)"]


@override_settings(DATASET_MAX_BYTES=1000)
def test_it_rejects_a_file_over_the_size_limit():
    assert problems("x" * 1001) == ["The file is 0.0 MB; the limit is 0 MB (DATASET_MAX_BYTES)."]


def test_it_rejects_an_empty_file():
    assert problems("\n\n") == ["the file is empty"]


def test_it_removes_exact_duplicates_and_flags_conflicts():
    data = SENTIMENT_CSV + '\n"message 0",positive\n"Message 1",positive\n'
    report = validate_dataset(data.encode(), "s.csv")
    assert report.ok
    assert report.stats["duplicates_removed"] == 1
    assert report.stats["conflicting_duplicates"] == 1
    assert "line 12 repeats line 3" in report.warnings[0]
    assert len(report.rows) == 9


def test_it_requires_enough_rows():
    assert problems(chat()) == ["only 1 usable rows; at least 4 are needed to train and evaluate"]


@pytest.mark.parametrize(("line", "expected"), [
    ('{"messages": []}', "dialogue"), ('{"text": "a", "label": "b"}', "sentiment"), ("[1, 2]", None)])
def test_it_detects_the_task_from_the_first_line(line, expected):
    assert detect_task("jsonl", line) == expected


def pair(query="Do you ship to Canada?", passage="Yes, to the US and Canada.", names=("query", "passage")):
    return json.dumps(dict(zip(names, (query, passage), strict=True)))


GOOD_PAIRS = "\n".join(pair(f"question {i}?", f"answer {i % 4}.") for i in range(6))


def test_it_accepts_query_passage_pairs_with_their_statistics():
    report = validate_dataset(GOOD_PAIRS.encode(), "pairs.jsonl")
    assert report.ok and report.task == "embedding" and len(report.rows) == 6
    assert report.rows[0] == {"query": "question 0?", "passage": "answer 0."}
    assert (report.stats["rows"], report.stats["distinct_passages"], report.stats["distinct_queries"]) == (6, 4, 6)
    assert report.stats["query_characters"]["max"] == 11 and report.stats["passage_characters"]["p50"] == 9


def test_it_accepts_the_sentence_transformers_names_anchor_and_positive():
    data = "\n".join(pair(f"q{i}", f"p{i}", names=("anchor", "positive")) for i in range(4))
    report = validate_dataset(data.encode(), "pairs.jsonl")
    assert report.ok and report.task == "embedding"
    assert report.rows[3] == {"query": "q3", "passage": "p3"}


def test_it_reports_every_bad_pair_with_its_line():
    lines = GOOD_PAIRS.split("\n") + [
        json.dumps({"query": "Where is my order?"}), json.dumps({"passage": "Ships in two days."}),
        pair(query="   "), pair(passage=""), json.dumps({"query": 7, "passage": ["a"]}), '{"query": "oops',
        "[1, 2]"]
    assert problems("\n".join(lines), task="embedding") == [
        'line 7: missing "passage"', 'line 8: missing "query"', "line 9: empty query", "line 10: empty passage",
        'line 11: "query" must be a string', 'line 11: "passage" must be a string',
        "line 12: not valid JSON (Unterminated string starting at at column 11)",  # found first, listed in order
        "line 13: each line must be a JSON object"]


def test_it_removes_duplicate_pairs_and_counts_them():
    data = GOOD_PAIRS + "\n" + pair("QUESTION 0?", "answer 0.") + "\n" + pair("question 0?", "answer 1.")
    report = validate_dataset(data.encode(), "pairs.jsonl")
    assert report.ok and report.stats["duplicates_removed"] == 1 and len(report.rows) == 7


def test_it_requires_four_pairs():
    assert problems("\n".join([pair("a", "b"), pair("c", "d")])) == [
        "only 2 usable rows; at least 4 are needed to train and evaluate"]


PAIRS_CSV = "query,passage\n" + "\n".join(f'"question {i}?","answer {i}, in full."' for i in range(5))


def test_it_reads_pairs_from_a_csv_with_a_query_passage_header():
    report = validate_dataset(PAIRS_CSV.encode(), "pairs.csv")
    assert report.ok and report.task == "embedding" and report.file_format == "csv"
    assert report.rows[1] == {"query": "question 1?", "passage": "answer 1, in full."}


def test_it_reports_an_empty_passage_cell_with_its_csv_line():
    assert problems(PAIRS_CSV + '\n"question 9?",\n', "pairs.csv") == ["line 7: empty passage"]


def test_it_reports_a_pair_csv_without_a_passage_column():
    assert problems("query,answer\nx,y\n", "pairs.csv", task="embedding") == [
        "line 1: the CSV header must have query and passage columns; missing passage (found: query, answer)"]


@pytest.mark.parametrize(("header", "expected"), [
    ("query,passage", "embedding"), ("anchor,positive", "embedding"), ("text,label", "sentiment"),
    ('"Query","Passage"', "embedding"), ("id,text,label,query", "sentiment")])
def test_it_detects_the_task_from_the_csv_header(header, expected):
    assert detect_task("csv", header + "\nx,y\n") == expected


@pytest.mark.parametrize("line", ['{"query": "a", "passage": "b"}', '{"anchor": "a", "positive": "b"}'])
def test_it_detects_pairs_from_the_first_line(line):
    assert detect_task("jsonl", line) == "embedding"


def test_problems_are_listed_in_line_order_whichever_check_finds_them():
    no_answer = json.dumps({"messages": [{"role": "user", "content": "anyone?"}]})
    assert problems("\n".join([chat(), no_answer, "not json", chat("a", "")] + GOOD_CHATS.split("\n"))) == [
        "line 2: no assistant turn: nothing to learn from this example",
        "line 3: not valid JSON (Expecting value at column 1)",
        "line 4: message 2: empty content"]


def test_a_file_with_too_many_problems_shows_the_first_ones():
    from finetune.validation import MAX_PROBLEMS

    no_answer = json.dumps({"messages": [{"role": "user", "content": "anyone?"}]})
    report = validate_dataset("\n".join([no_answer] * (MAX_PROBLEMS + 50) + ["not json"]).encode(), "d.jsonl")
    assert [p.line for p in report.problems] == list(range(1, MAX_PROBLEMS + 1))
    assert report.truncated_problem_count == 51
