"""Validate an uploaded training file completely before anything is stored.

Every problem is reported with its line number and a precise reason; a file with any problem is
rejected whole. Pure Python: the web process runs this (token statistics, which need the base
model's tokenizer, are computed later by a worker task).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from bisect import insort
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings

ROLES = ("system", "user", "assistant")
# Embedding pairs: our names first, then the sentence-transformers names of the same columns.
PAIR_FIELDS = (("query", "anchor"), ("passage", "positive"))
MAX_PROBLEMS = 200
MIN_ROWS = 4
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ValidationReport:
    task: str | None
    file_format: str | None
    rows: list[dict] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    truncated_problem_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, line: int | None, message: str) -> None:
        """Keep the MAX_PROBLEMS first problems in line order (whole-file ones first), whichever pass
        finds them: a line that is not JSON is found before a row that lacks an answer, but a person
        fixes the file from the top."""
        insort(self.problems, Problem(line, message), key=_line_order)
        if len(self.problems) > MAX_PROBLEMS:
            self.problems.pop()
            self.truncated_problem_count += 1

    @property
    def preview(self) -> list[dict]:
        return self.rows[:PREVIEW_ROWS]


def _line_order(problem: Problem) -> int:
    return problem.line or 0


class DatasetTooLarge(Exception):
    pass


def check_size(size: int, limit: int | None = None) -> None:
    limit = settings.DATASET_MAX_BYTES if limit is None else limit
    if size > limit:
        raise DatasetTooLarge(f"The file is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB "
                              f"(DATASET_MAX_BYTES).")


def detect_format(filename: str, text: str) -> str:
    lower = filename.lower()
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _is_pair_record(keys) -> bool:
    return any(name in keys for names in PAIR_FIELDS for name in names)


def detect_task(file_format: str, text: str) -> str | None:
    """Dialogue files have `messages`; classification files have `text` and `label`; embedding files have
    `query` and `passage` (or `anchor` and `positive`)."""
    if file_format == "csv":
        header = text.lstrip("\ufeff").split("\n", 1)[0]
        delimiter = "\t" if "\t" in header else ","
        columns = {name.strip().strip('"').lower() for name in header.split(delimiter)}
        return "embedding" if _is_pair_record(columns) and not {"text", "label"} <= columns else "sentiment"
    for line in text.splitlines():
        if line.strip():
            try:
                first = json.loads(line)
            except json.JSONDecodeError:
                return None
            if isinstance(first, dict) and "messages" in first:
                return "dialogue"
            if isinstance(first, dict) and ("text" in first or "label" in first):
                return "sentiment"
            if isinstance(first, dict) and _is_pair_record(first):
                return "embedding"
            return None
    return None


def _decode(data: bytes, report: ValidationReport) -> str | None:
    nul = data.find(b"\x00")
    if nul != -1:
        report.add(data.count(b"\n", 0, nul) + 1, f"this is a binary file, not text (NUL byte at offset {nul})")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        report.add(line, f"bad encoding: byte 0x{data[error.start]:02x} at offset {error.start} is not valid "
                         "UTF-8 (save the file as UTF-8)")
        return None


def _check_line_lengths(text: str, report: ValidationReport) -> None:
    limit = settings.DATASET_MAX_LINE_CHARS
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > limit:
            report.add(number, f"line too long: {len(line):,} characters (limit {limit:,})")


def validate_dataset(data: bytes, filename: str, task: str | None = None) -> ValidationReport:
    """Validate `data` (the whole file). `task` may be None to infer it from the content."""
    report = ValidationReport(task=task, file_format=None)
    try:
        check_size(len(data))
    except DatasetTooLarge as error:
        report.add(None, str(error))
        return report
    if not data.strip():
        report.add(None, "the file is empty")
        return report
    text = _decode(data, report)
    if text is None:
        return report
    _check_line_lengths(text, report)
    if report.problems:
        return report
    report.file_format = detect_format(filename, text)
    report.task = task or detect_task(report.file_format, text)
    if report.task is None:
        report.add(1, 'cannot tell the task: expected {"messages": [...]} (dialogue), "text" and "label" '
                      '(sentiment) or "query" and "passage" (embedding) on the first line')
        return report
    if report.task == "dialogue":
        if report.file_format != "jsonl":
            report.add(None, "dialogue datasets must be JSONL in OpenAI's chat format")
            return report
        _validate_dialogue(text, report)
    elif report.task == "embedding":
        _validate_pairs(text, report)
    else:
        _validate_classification(text, report)
    if report.ok and len(report.rows) < MIN_ROWS:
        report.add(None, f"only {len(report.rows)} usable rows; at least {MIN_ROWS} are needed to train and evaluate")
    if report.ok:
        report.stats.update(_stats(report))
    return report


def _validate_dialogue(text: str, report: ValidationReport) -> None:
    seen: dict[str, int] = {}
    duplicates = 0
    for number, record in _jsonl_records(text, report):
        messages = record.get("messages")
        if messages is None:
            report.add(number, 'missing "messages"')
            continue
        if not isinstance(messages, list) or not messages:
            report.add(number, '"messages" must be a non-empty list')
            continue
        clean, ok = [], True
        for index, message in enumerate(messages, start=1):
            if not isinstance(message, dict):
                report.add(number, f"message {index} must be an object with role and content")
                ok = False
                continue
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                report.add(number, f"message {index}: unknown role {role!r} (use system, user or assistant)")
                ok = False
            if not isinstance(content, str):
                report.add(number, f"message {index}: content must be a string")
                ok = False
            elif not content.strip():
                report.add(number, f"message {index}: empty content")
                ok = False
            elif role == "system" and index != 1:
                report.add(number, f"message {index}: a system message may only come first")
                ok = False
            clean.append({"role": role, "content": content})
        if ok and not any(m["role"] == "assistant" for m in clean):
            report.add(number, "no assistant turn: nothing to learn from this example")
            ok = False
        if not ok:
            continue
        key = json.dumps(clean, sort_keys=True)
        if key in seen:
            duplicates += 1
            continue
        seen[key] = number
        report.rows.append({"messages": clean})
        report.line_numbers.append(number)
    report.stats["duplicates_removed"] = duplicates


def _validate_classification(text: str, report: ValidationReport) -> None:
    if report.file_format == "csv":
        records = _csv_records(text, report, (("text",), ("label",)))
    else:
        records = _jsonl_records(text, report)
    seen: dict[str, tuple[str, int]] = {}
    duplicates, conflicts = 0, []
    label_lines: dict[str, list[int]] = {}
    for number, record in records:
        text_value, label_value = record.get("text"), record.get("label")
        ok = True
        if text_value is None:
            report.add(number, 'missing "text"')
            ok = False
        elif not isinstance(text_value, str):
            report.add(number, '"text" must be a string')
            ok = False
        elif not text_value.strip():
            report.add(number, "empty text")
            ok = False
        if label_value is None:
            report.add(number, 'missing "label"')
            ok = False
        elif isinstance(label_value, bool) or not isinstance(label_value, str | int):
            report.add(number, '"label" must be a string')
            ok = False
        elif not str(label_value).strip():
            report.add(number, "empty label")
            ok = False
        if not ok:
            continue
        assert isinstance(text_value, str)
        text_value, label = text_value.strip(), str(label_value).strip()
        key = _fold(text_value)
        if key in seen:
            first_label, first_line = seen[key]
            if first_label == label:
                duplicates += 1
            else:
                conflicts.append(f"line {number} repeats line {first_line} with label {label!r} instead of "
                                 f"{first_label!r}; kept line {first_line}")
            continue
        seen[key] = (label, number)
        label_lines.setdefault(label, []).append(number)
        report.rows.append({"text": text_value, "label": label})
        report.line_numbers.append(number)
    for label, lines in sorted(label_lines.items()):
        if len(lines) < 2:
            report.add(lines[0], f"label {label!r} has only {len(lines)} example; every label needs at least 2")
    report.labels = sorted(label_lines)
    if report.ok and len(report.labels) == 1:
        report.add(None, f"only one label ({report.labels[0]!r}) in the file; a classifier needs at least 2")
    report.warnings.extend(conflicts[:20])
    report.stats["duplicates_removed"] = duplicates
    report.stats["conflicting_duplicates"] = len(conflicts)


def _validate_pairs(text: str, report: ValidationReport) -> None:
    """(query, passage) pairs for retrieval; the same pair twice (up to case and Unicode form) is dropped."""
    if report.file_format == "csv":
        records = _csv_records(text, report, PAIR_FIELDS)
    else:
        records = [(number, _pair_fields(record)) for number, record in _jsonl_records(text, report)]
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for number, record in records:
        values = {}
        for name in ("query", "passage"):
            value = record.get(name)
            if value is None:
                report.add(number, f'missing "{name}"')
            elif not isinstance(value, str):
                report.add(number, f'"{name}" must be a string')
            elif not value.strip():
                report.add(number, f"empty {name}")
            else:
                values[name] = value.strip()
        if len(values) < 2:
            continue
        key = (_fold(values["query"]), _fold(values["passage"]))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        report.rows.append({"query": values["query"], "passage": values["passage"]})
        report.line_numbers.append(number)
    report.stats["duplicates_removed"] = duplicates


def _pair_fields(record: dict) -> dict:
    """A JSONL pair under our names, whichever of the accepted names it used."""
    return {names[0]: next((record[name] for name in names if name in record), None) for names in PAIR_FIELDS}


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _csv_records(text: str, report: ValidationReport, fields: tuple[tuple[str, ...], ...]) -> list[tuple[int, dict]]:
    """Records keyed by each field's first name; a field's column may carry any of its names."""
    dialect: type[csv.Dialect] = csv.excel_tab if "\t" in text.split("\n", 1)[0] else csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as error:
        report.add(1, f"cannot read the CSV header ({error})")
        return []
    columns = [name.strip().lower() for name in header]
    indices = {names[0]: next((columns.index(name) for name in names if name in columns), None) for names in fields}
    missing = [name for name, index in indices.items() if index is None]
    if missing:
        report.add(1, f"the CSV header must have {' and '.join(indices)} columns; missing {', '.join(missing)} "
                      f"(found: {', '.join(header) or 'nothing'})")
        return []
    records = []
    previous_end, malformed = 1, False
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            report.add(reader.line_num, f"malformed CSV ({error})")
            previous_end, malformed = reader.line_num, True
            continue
        start = previous_end + 1
        previous_end = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        records.append((start, {name: row[index] for name, index in indices.items()
                                if index is not None and len(row) > index}))
    if not records and not malformed:  # blank lines at most below the header
        report.add(None, "the file has a header but no rows")
    return records


def _jsonl_records(text: str, report: ValidationReport) -> list[tuple[int, dict]]:
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            report.add(number, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(record, dict):
            report.add(number, "each line must be a JSON object")
            continue
        records.append((number, record))
    return records


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def _stats(report: ValidationReport) -> dict:
    stats: dict = {"rows": len(report.rows)}
    if report.task == "dialogue":
        stats["messages_per_example"] = _percentiles([len(r["messages"]) for r in report.rows])
        stats["assistant_turns"] = sum(1 for r in report.rows for m in r["messages"] if m["role"] == "assistant")
        stats["characters"] = _percentiles([sum(len(m["content"]) for m in r["messages"]) for r in report.rows])
        stats["with_system_prompt"] = sum(1 for r in report.rows if r["messages"][0]["role"] == "system")
    elif report.task == "embedding":
        stats["distinct_passages"] = len({r["passage"] for r in report.rows})
        stats["distinct_queries"] = len({r["query"] for r in report.rows})
        stats["characters"] = _percentiles([len(r["query"]) + len(r["passage"]) for r in report.rows])
        stats["query_characters"] = _percentiles([len(r["query"]) for r in report.rows])
        stats["passage_characters"] = _percentiles([len(r["passage"]) for r in report.rows])
    else:
        distribution = Counter(r["label"] for r in report.rows)
        stats["label_distribution"] = dict(sorted(distribution.items()))
        stats["characters"] = _percentiles([len(r["text"]) for r in report.rows])
    return stats
