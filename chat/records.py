"""Transcripts export, the date range a console page covers, and erasing everything stored about one visitor."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization
from chat.models import Message, Visitor
from core.bounds import EARLIEST_DATE, LATEST_DATE, OutOfBounds, date_range
from core.redis_client import sync_redis

EXPORT_FIELDS = ["conversation", "visitor", "visitor_external_id", "visitor_email", "status", "seq", "author", "agent",
                 "internal", "created_at", "text", "sentiment_label", "sentiment_score", "sentiment_value"]
EXPORT_FORMATS = ("csv", "json", "jsonl")
# Messages per query: an export's memory stays flat however many messages the range holds.
EXPORT_CHUNK = 500
# What a page shows when it is given no start.
DEFAULT_DAYS = 30
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BadPeriod(ValueError):
    """A date range a console page or export refuses; the message is safe to show to the client."""


def parse_period(start_text: str, end_text: str, today: date) -> tuple[date, date]:
    """The (start, end) a page covers, from its ?start=&end= (YYYY-MM-DD); BadPeriod naming the problem otherwise.

    Refused rather than clamped, so a download never silently holds less than was asked for. Missing
    dates default to the DEFAULT_DAYS days ending today (or ending at the given end).
    """
    end = _day("end", end_text) if end_text else today
    start = _day("start", start_text) if start_text else max(end - timedelta(days=DEFAULT_DAYS - 1), EARLIEST_DATE)
    if end < start:
        raise BadPeriod(f"end ({end}) is before start ({start}).")
    try:
        return date_range(start, end)
    except OutOfBounds as error:
        raise BadPeriod(f"{error} {start} to {end} is {(end - start).days + 1} days: choose a shorter range.") from None


def _day(name: str, text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadPeriod(f"{name} is not a date: use YYYY-MM-DD.") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise BadPeriod(f"{name} must be between {EARLIEST_DATE} and {LATEST_DATE}.")
    return day


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    return (timezone.make_aware(datetime.combine(start, time.min), zone),
            timezone.make_aware(datetime.combine(end, time.max), zone))


def transcript_chunks(organization: Organization, start: date, end: date) -> Iterator[list[dict]]:
    """The period's messages as rows, EXPORT_CHUNK at a time, in (conversation, seq) order.

    Each chunk is its own query after the last row of the one before (keyset pagination): no cursor
    stays open between chunks, so a streaming response may pull them from any thread (ASGI).
    """
    low, high = day_bounds(start, end)
    messages = (Message.objects.filter(conversation__organization=organization, created_at__range=(low, high))
                .select_related("conversation__visitor", "agent").order_by("conversation_id", "seq"))
    after = Q()
    while True:
        chunk = list(messages.filter(after)[:EXPORT_CHUNK])
        if chunk:
            yield [_row(m) for m in chunk]
        if len(chunk) < EXPORT_CHUNK:
            return
        last = chunk[-1]
        after = Q(conversation_id__gt=last.conversation_id) | Q(conversation_id=last.conversation_id, seq__gt=last.seq)


def _row(m: Message) -> dict:
    return {
        "conversation": m.conversation_id, "visitor": m.conversation.visitor_id,
        "visitor_external_id": m.conversation.visitor.external_id, "visitor_email": m.conversation.visitor.email,
        "status": m.conversation.status, "seq": m.seq, "author": m.author,
        "agent": m.agent.username if m.agent else "", "internal": m.internal,
        "created_at": m.created_at.isoformat(), "text": m.text, "sentiment_label": m.sentiment_label,
        "sentiment_score": m.sentiment_score, "sentiment_value": m.sentiment_value,
    }


def csv_cell(value: object) -> object:
    """A value as a CSV cell no spreadsheet runs: text starting a formula gets a leading single quote.

    Numbers are left as numbers: ours come from the database, and a negative score is no formula.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Line:
    """The file-like object csv.writer wants; writerow returns the line instead of buffering it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(chunks: Iterator[list[dict]]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    yield _encode(writer.writerow(EXPORT_FIELDS))
    for rows in chunks:
        yield _encode("".join(writer.writerow([csv_cell(row[field]) for field in EXPORT_FIELDS]) for row in rows))


def json_lines(chunks: Iterator[list[dict]]) -> Iterator[bytes]:
    """One JSON document, {"object": "list", "data": [...]}, written a chunk at a time."""
    yield b'{"object": "list", "data": ['
    first = True
    for rows in chunks:
        items = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
        yield _encode(("\n" if first else ",\n") + items)
        first = False
    yield b"\n]}\n"


def jsonl_lines(chunks: Iterator[list[dict]]) -> Iterator[bytes]:
    for rows in chunks:
        yield _encode("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _encode(text: str) -> bytes:
    # A lone surrogate (SQLite stores one) must not break the download half-way.
    return text.encode("utf-8", errors="replace")


@dataclass
class Erased:
    visitor_id: int
    conversations: int
    messages: int


@transaction.atomic
def erase_visitor(visitor: Visitor) -> Erased:
    """Delete the visitor, their identity and every conversation and message (the right to erasure)."""
    conversations = visitor.conversations.count()
    messages = Message.objects.filter(conversation__visitor=visitor).count()
    erased = Erased(visitor.pk, conversations, messages)
    token = visitor.token
    visitor.delete()  # cascades to conversations and their messages
    transaction.on_commit(lambda: _forget_rate_limits(token))
    return erased


def _forget_rate_limits(token: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError):  # the bucket expires within minutes anyway
        sync_redis().delete(f"rl:chat:visitor:{token}")
