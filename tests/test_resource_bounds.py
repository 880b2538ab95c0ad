"""Resource bounds: a busy organization's longest allowed range answers within a set time and memory.

These are bounds, not benchmarks. The limits are generous (a slow shared CI machine with tracemalloc
on passes them easily); what they catch is work that grows without bound with the request: a
dashboard that builds an entry per day of any range (0001..9999 took > 11 GB), or an export that
builds the whole file in memory instead of streaming it.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
from django.utils import timezone

from chat.models import Author, Conversation, ConversationStatus, Message, Visitor
from core.bounds import DAYS_IN_RANGE
from tests.chat.conftest import widget  # noqa: F401 - the fixture, shared with the chat tests

SECONDS = 60.0
MEMORY = 64 * 1024 * 1024
DAYS = 730
CONVERSATIONS_PER_DAY = 2
MESSAGES_PER_CONVERSATION = 3
T = TypeVar("T")


def measured(request: Callable[[], T]) -> tuple[T, float, int]:
    """(result, seconds, peak bytes allocated by Python) of one call."""
    gc.collect()
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = request()
        return result, time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def busy_organization(alice, widget):  # noqa: F811 - the imported fixture
    """Two years of conversations, built with bulk_create so the fixture takes seconds."""
    today = timezone.localdate()
    zone = timezone.get_current_timezone()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    count = DAYS * CONVERSATIONS_PER_DAY
    visitors = Visitor.objects.bulk_create([Visitor(widget=widget, name=f"Customer {i}") for i in range(count)])
    conversations = []
    for i, visitor in enumerate(visitors):
        opened = timezone.make_aware(datetime.combine(days[i // CONVERSATIONS_PER_DAY], datetime.min.time()), zone)
        opened += timedelta(hours=9 + i % 8)
        escalated = i % 3 == 0
        conversations.append(Conversation(
            organization=alice.organization, widget=widget, visitor=visitor, created_at=opened,
            last_message_at=opened, status=ConversationStatus.RESOLVED if i % 2 else ConversationStatus.BOT,
            escalated_at=opened if escalated else None,
            first_agent_reply_at=opened + timedelta(minutes=2) if escalated else None,
            resolved_at=opened + timedelta(minutes=9) if i % 2 else None,
            resolved_by_human=escalated if i % 2 else None,
            csat=(1, -1, None)[i % 3], sentiment_score=(i % 7 - 3) / 3, last_message_preview="Where is my order?"))
    conversations = Conversation.objects.bulk_create(conversations)
    labels = ("negative", "neutral", "positive")
    messages = []
    for i, conversation in enumerate(conversations):
        for seq in range(1, MESSAGES_PER_CONVERSATION + 1):
            customer = seq % 2 == 1
            messages.append(Message(
                conversation=conversation, seq=seq, author=Author.CUSTOMER if customer else Author.BOT,
                text=f"Message {seq} of conversation {i}: where is my order? " * 3,
                created_at=conversation.created_at + timedelta(minutes=seq),
                sentiment_label=labels[(i + seq) % 3] if customer else "",
                sentiment_value=((i + seq) % 3 - 1) * 0.8 if customer else None,
                knowledge={} if customer else {"outcome": ("quoted", "did_not_know")[i % 2]}))
    Message.objects.bulk_create(messages, batch_size=1000)
    return alice, days[0], days[-1], len(messages)


def test_the_fixture_covers_the_longest_range(busy_organization):
    _, start, end, messages = busy_organization
    assert DAYS_IN_RANGE.contains((end - start).days + 1) and messages >= 4000


def test_the_dashboard_for_two_busy_years_stays_within_bounds(busy_organization):
    alice, start, end, _ = busy_organization
    response, seconds, peak = measured(lambda: alice.client.get(
        "/console/insights/", {"start": start.isoformat(), "end": end.isoformat()}))
    assert response.status_code == 200
    by_people = sum(1 for i in range(DAYS * CONVERSATIONS_PER_DAY) if i % 2 and i % 3 == 0)
    page = response.content.decode()
    assert f"by people: <strong>{by_people}</strong>" in page
    half = DAYS * CONVERSATIONS_PER_DAY // 2  # every conversation has one bot reply: quoted or "did not know"
    assert f"answered from knowledge: <strong>{half}</strong>" in page
    assert f'"did not know" replies: <strong>{half}</strong>' in page
    assert seconds < SECONDS and peak < MEMORY, (seconds, peak)


def test_the_whole_calendar_is_refused_within_bounds(busy_organization):
    alice, *_ = busy_organization
    for page in ("/console/insights/", "/console/export/"):
        response, seconds, peak = measured(lambda page=page: alice.client.get(
            page, {"start": "0001-01-01", "end": "9999-12-31"}))
        assert response.status_code == 400
        assert seconds < SECONDS and peak < MEMORY, (page, seconds, peak)


@pytest.mark.parametrize("export_format", ["csv", "json", "jsonl"])
def test_exporting_two_busy_years_streams_within_bounds(busy_organization, export_format):
    alice, start, end, messages = busy_organization

    def download() -> tuple[bool, int, int]:
        response = alice.client.get("/console/export/", {"start": start.isoformat(), "end": end.isoformat(),
                                                         "format": export_format})
        assert response.status_code == 200
        size = lines = 0
        for chunk in response.streaming_content:  # read as a client would, never holding the whole file
            size += len(chunk)
            lines += chunk.count(b"\n")
        return response.streaming, size, lines

    (streaming, size, lines), seconds, peak = measured(download)
    assert streaming
    assert lines >= messages and size > 100 * messages
    assert seconds < SECONDS and peak < MEMORY, (seconds, peak)
