"""Transcripts export, and erasing everything stored about one visitor on request."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime, time

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from chat.models import Message, Visitor

EXPORT_FIELDS = ["conversation", "visitor", "visitor_external_id", "visitor_email", "status", "seq", "author", "agent",
                 "internal", "created_at", "text", "sentiment_label", "sentiment_score", "sentiment_value"]


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    zone = timezone.get_current_timezone()
    return (timezone.make_aware(datetime.combine(start, time.min), zone),
            timezone.make_aware(datetime.combine(end, time.max), zone))


def transcript_rows(organization: Organization, start: date, end: date) -> list[dict]:
    low, high = day_bounds(start, end)
    messages = (Message.objects.filter(conversation__organization=organization, created_at__range=(low, high))
                .select_related("conversation__visitor", "agent").order_by("conversation_id", "seq"))
    return [{
        "conversation": m.conversation_id, "visitor": m.conversation.visitor_id,
        "visitor_external_id": m.conversation.visitor.external_id, "visitor_email": m.conversation.visitor.email,
        "status": m.conversation.status, "seq": m.seq, "author": m.author,
        "agent": m.agent.username if m.agent else "", "internal": m.internal,
        "created_at": m.created_at.isoformat(), "text": m.text, "sentiment_label": m.sentiment_label,
        "sentiment_score": m.sentiment_score, "sentiment_value": m.sentiment_value,
    } for m in messages]


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def to_json(rows: list[dict]) -> str:
    return json.dumps({"object": "list", "data": rows}, ensure_ascii=False, indent=1)


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
    from django.conf import settings

    with contextlib.suppress(redis.RedisError):  # the bucket expires within minutes anyway
        redis.Redis.from_url(settings.REDIS_URL).delete(f"rl:chat:visitor:{token}")
