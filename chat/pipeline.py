"""What happens after a customer message is stored: handoff rules, sentiment, the bot's reply.

Runs in the web process that received the message. Scoring starts at once, so messages arriving
together (from any conversation) share one request to the model; the rest runs one message at a
time per conversation (an asyncio lock, first come first served), so a quick second message waits
for the first reply instead of interleaving, and labels are folded in in the order written.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction

from chat import assistant, presence
from chat.conversations import conversation_group, set_status
from chat.handoff import (
    BOT_DID_NOT_KNOW,
    TOLD_HUMAN_IS_COMING,
    TOLD_NOBODY_ONLINE,
    HandoffRules,
    asks_for_human,
    decide,
)
from chat.models import Conversation, ConversationStatus, Message, Widget
from chat.sentiment import ScoringTarget, record_sentiment, score_text, scoring_target
from core.background import in_background
from core.broadcast import notify

logger = logging.getLogger(__name__)

_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


# How long a web process may act on a widget's old settings after an edit made in another process
# (edits in this process apply at once: see chat/apps.py). Reading the widget and its sentiment
# deployment for every message cost a fifth of the web process's time under load (bench/chat.py);
# once a second is nothing.
RULES_TTL_SECONDS = 1.0


@dataclass(frozen=True)
class WidgetRules:
    handoff: HandoffRules
    scoring: ScoringTarget | None


_rules: dict[int, tuple[float, WidgetRules]] = {}


def forget_widget_rules(**_: object) -> None:
    _rules.clear()


def widget_rules(widget_id: int) -> WidgetRules:
    """The widget's handoff rules and sentiment model (sync: may read the database)."""
    cached = _rules.get(widget_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    widget = Widget.objects.select_related("sentiment_deployment").get(pk=widget_id)
    rules = WidgetRules(HandoffRules.of(widget), scoring_target(widget))
    _rules[widget_id] = (time.monotonic() + RULES_TTL_SECONDS, rules)
    return rules


@dataclass(frozen=True)
class Incoming:
    """A customer message just stored, with the widget's rules as they were then."""

    message: Message
    rules: WidgetRules


def incoming(message: Message, widget_id: int) -> Incoming:
    """Call where the message is stored (sync: reading the rules may take a query)."""
    return Incoming(message, widget_rules(widget_id))


def start(arrived: Incoming) -> None:
    """Handle a stored customer message in the background (the socket keeps serving meanwhile)."""
    in_background(handle_customer_message(arrived))


def _lock(conversation_id: int) -> asyncio.Lock:
    lock = _locks.get(conversation_id)
    if lock is None:
        lock = _locks[conversation_id] = asyncio.Lock()
    return lock


def _load(conversation_id: int) -> Conversation:
    return Conversation.objects.get(pk=conversation_id)


def _settle(message: Message, label: dict | None) -> Conversation:
    """In the message's turn: reopen a conversation resolved before the message was written (not one
    an agent resolved after it), fold in the message's label if any."""
    with transaction.atomic():
        conversation = _load(message.conversation_id)
        if conversation.status == ConversationStatus.RESOLVED and (
                conversation.resolved_at is None or message.created_at > conversation.resolved_at):
            conversation = set_status(conversation, ConversationStatus.BOT)
        if label is not None:
            conversation = record_sentiment(message, label["label"], label["score"], label["scores"], conversation)
    return conversation


async def escalate(conversation_id: int, reason: str) -> None:
    conversation = await sync_to_async(_load)(conversation_id)
    online = await presence.agents_online(conversation.organization_id)
    await sync_to_async(set_status)(conversation, ConversationStatus.NEEDS_HUMAN, reason=reason,
                                    system_text=TOLD_HUMAN_IS_COMING if online else TOLD_NOBODY_ONLINE)
    if not online:  # after the status and the notice just announced (notify keeps the order)
        notify(conversation_group(conversation_id), {"type": "chat.ask_email"})


async def handle_customer_message(arrived: Incoming) -> None:
    message, rules = arrived.message, arrived.rules
    conversation_id, text = message.conversation_id, message.text
    scoring = asyncio.ensure_future(score_text(rules.scoring, text))  # before the turn: shared batches
    async with _lock(conversation_id):
        try:
            if asks_for_human(text, rules.handoff.phrases):  # hand over without waiting for the label
                conversation = await sync_to_async(_settle)(message, None)
                if conversation.status == ConversationStatus.BOT:
                    await escalate(conversation_id, "the customer asked for a human")
                label = await scoring
                if label is not None:
                    await sync_to_async(_settle)(message, label)
                return
            conversation = await sync_to_async(_settle)(message, await scoring)
            decision = decide(conversation, rules.handoff, text)
            if decision.escalate:
                await escalate(conversation_id, decision.reason)
            elif conversation.status == ConversationStatus.BOT:
                answered = await assistant.reply(conversation_id)
                if answered is not None and answered.handoff:  # it said "I don't know — shall I get someone?"
                    await escalate(conversation_id, BOT_DID_NOT_KNOW)
        except Exception:
            logger.exception("handling message %s of conversation %s failed", message.pk, conversation_id)
        finally:
            scoring.cancel()  # a no-op once awaited; otherwise nobody wants the label any more
