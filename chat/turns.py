"""Whose turn it is to handle a conversation's customer messages, claimed in the database.

Several web processes (and the sweeper in a Celery worker) may receive or find messages of one
conversation. Exactly one of them holds the conversation's turn at a time: it takes it with a
conditional UPDATE (free, or stale because its holder died), renews it while it works, and hands it
back when no customer message is left unhandled. Whoever fails to take the turn leaves its message
to the holder, which looks again after handing the turn back, so no message waits for the sweeper
unless a process died. Sync functions: call them through sync_to_async from the event loop.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from chat.models import Author, Conversation, Message

# A holder renews its claim every RENEW_SECONDS; one not renewed for STALE_SECONDS is taken as dead.
RENEW_SECONDS = 5.0
STALE_SECONDS = 30.0


def process_owner(role: str = "web") -> str:
    """A name for this process's claims (unique per process start, readable in the admin)."""
    return f"{role}:{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _stale_before():
    return timezone.now() - timedelta(seconds=STALE_SECONDS)


def claimable() -> Q:
    """Conversations whose turn nobody holds, or whose holder stopped renewing it."""
    return Q(turn_owner="") | Q(turn_claimed_at__lt=_stale_before()) | Q(turn_claimed_at=None)


def claim(conversation_id: int, owner: str) -> bool:
    """Take the conversation's turn; False if a live holder has it."""
    return Conversation.objects.filter(claimable(), pk=conversation_id).update(
        turn_owner=owner, turn_claimed_at=timezone.now()) == 1


def renew(conversation_id: int, owner: str) -> bool:
    """Keep holding the turn; False if it was taken over (this holder was taken for dead)."""
    return Conversation.objects.filter(pk=conversation_id, turn_owner=owner).update(
        turn_claimed_at=timezone.now()) == 1


def release(conversation_id: int, owner: str) -> None:
    Conversation.objects.filter(pk=conversation_id, turn_owner=owner).update(turn_owner="", turn_claimed_at=None)


def holds(conversation_id: int, owner: str) -> bool:
    """Call inside the transaction that acts on the turn (SELECT FOR UPDATE on PostgreSQL; SQLite's
    IMMEDIATE transaction holds the write lock): a holder taken for dead must not write."""
    return Conversation.objects.select_for_update().filter(pk=conversation_id, turn_owner=owner).exists()


def unhandled(conversation_id: int) -> Q:
    return Q(conversation_id=conversation_id, author=Author.CUSTOMER, handled_at=None)


def next_unhandled(conversation_id: int) -> Message | None:
    """The conversation's oldest customer message not handled yet (written order)."""
    return Message.objects.filter(unhandled(conversation_id)).order_by("seq").first()


def has_unhandled(conversation_id: int) -> bool:
    return Message.objects.filter(unhandled(conversation_id)).exists()


def mark_handled(message_id: int) -> bool:
    return Message.objects.filter(pk=message_id, handled_at=None).update(handled_at=timezone.now()) == 1


def left_behind(grace_seconds: float, limit: int) -> list[int]:
    """Conversations with a customer message unhandled for `grace_seconds` whose turn is free or
    stale: what a process that died left (a live holder renews its claim and is left alone)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    waiting = (Message.objects.filter(author=Author.CUSTOMER, handled_at=None, created_at__lt=cutoff)
               .values("conversation_id"))
    return list(Conversation.objects.filter(claimable(), pk__in=waiting).order_by("pk")
                .values_list("pk", flat=True)[:limit])
