"""What happens after a customer message is stored: handoff rules, sentiment, the bot's reply.

Runs in the web process that received the message, or in the sweeper (chat/sweeper.py) for one a
dead process left. Scoring starts at once, so messages arriving together (from any conversation)
share one request to the model. The rest runs one message at a time per conversation, in the order
written, by whichever process holds the conversation's turn in the database (chat/turns.py): a quick
second message, even one sent from another tab on another web process, waits for the first reply
instead of interleaving, and labels are folded in in the order written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction

from chat import assistant, presence, turns
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

# This process's name on the turns it claims.
OWNER = turns.process_owner()

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


def _load(conversation_id: int) -> Conversation:
    return Conversation.objects.get(pk=conversation_id)


def _settle(message: Message, label: dict | None) -> Conversation:
    """In the message's turn: reopen a conversation resolved before the message was written (not one
    an agent resolved after it), fold in the message's label if any.

    The conversation's row is locked first, as append_message locks it before it inserts. Folding the
    label in updates the message's row and then the conversation's; a resend of the message being
    stored meanwhile holds the conversation's row and waits on the message's (its insert hits the
    unique client_id): opposite orders, and PostgreSQL broke the deadlock by failing one of them."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
        if conversation.status == ConversationStatus.RESOLVED and (
                conversation.resolved_at is None or message.created_at > conversation.resolved_at):
            conversation = set_status(conversation, ConversationStatus.BOT)
        if label is not None:
            conversation = record_sentiment(message, label["label"], label["score"], label["scores"]) or conversation
    return conversation


async def escalate(conversation_id: int, reason: str) -> None:
    conversation = await sync_to_async(_load)(conversation_id)
    online = await presence.agents_online(conversation.organization_id)
    await sync_to_async(set_status)(conversation, ConversationStatus.NEEDS_HUMAN, reason=reason,
                                    system_text=TOLD_HUMAN_IS_COMING if online else TOLD_NOBODY_ONLINE)
    if not online:  # after the status and the notice just announced (notify keeps the order)
        notify(conversation_group(conversation_id), {"type": "chat.ask_email"})


# Scoring started by a message's receiver, by message id, for whichever task of this process handles
# the message in its turn (the receiver, or the task already holding the conversation's turn).
_early: dict[int, tuple[int, WidgetRules, asyncio.Future]] = {}
# The turns tasks of this process hold: (owner, conversation id).
_held: set[tuple[str, int]] = set()


async def handle_customer_message(arrived: Incoming, owner: str = OWNER) -> None:
    """Start scoring the message, then take the conversation's turn and handle what is waiting in it;
    if another process (or another message of this one) holds the turn, the holder handles it."""
    message = arrived.message
    scoring = in_background(score_text(arrived.rules.scoring, message.text))  # before the turn: batches
    _early[message.pk] = (message.conversation_id, arrived.rules, scoring)
    try:
        await take_turn(message.conversation_id, owner)
    finally:
        if (owner, message.conversation_id) not in _held:  # no task here will handle it (any more)
            _forget_early(message.pk)


def _forget_early(message_id: int) -> None:
    entry = _early.pop(message_id, None)
    if entry is not None:
        entry[2].cancel()  # a no-op once awaited; otherwise nobody wants the label any more


async def take_turn(conversation_id: int, owner: str) -> int:
    """Handle the conversation's unhandled customer messages, oldest first, while holding its turn;
    returns how many. A turn left by a cancelled or failed task is not handed back: it goes stale and
    the sweeper takes it over."""
    handled = 0
    while await sync_to_async(turns.claim)(conversation_id, owner):
        lost = asyncio.Event()
        renewing = in_background(_renew(conversation_id, owner, lost))
        _held.add((owner, conversation_id))
        finished = False
        try:
            while not lost.is_set() and (message := await sync_to_async(turns.next_unhandled)(conversation_id)):
                _, rules, scoring = _early.pop(message.pk, (None, None, None))
                if rules is None:
                    rules = await sync_to_async(widget_rules)(await sync_to_async(_widget_id)(conversation_id))
                await _handle(message, rules, scoring, owner)
                handled += 1
            finished = not lost.is_set()
        finally:
            renewing.cancel()
            _held.discard((owner, conversation_id))
            if not finished:  # taken over, failed or cancelled: what receivers left here is not ours any more
                for message_id in [key for key, entry in _early.items() if entry[0] == conversation_id]:
                    _forget_early(message_id)
        if not finished:
            break
        await sync_to_async(turns.release)(conversation_id, owner)
        # A message stored after the last look, whose writer found the turn taken, is ours to handle.
        if not await sync_to_async(turns.has_unhandled)(conversation_id):
            break
    return handled


def _widget_id(conversation_id: int) -> int:
    return Conversation.objects.values_list("widget_id", flat=True).get(pk=conversation_id)


async def _renew(conversation_id: int, owner: str, lost: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(turns.RENEW_SECONDS)
        try:
            still_ours = await sync_to_async(turns.renew)(conversation_id, owner)
        except Exception:  # the database is away for a moment: the next renewal may succeed
            logger.warning("could not renew the turn of conversation %s", conversation_id, exc_info=True)
            continue
        if not still_ours:
            logger.warning("the turn of conversation %s was taken over; stopping here", conversation_id)
            lost.set()
            return


async def _handle(message: Message, rules: WidgetRules, scoring: asyncio.Future | None, owner: str) -> None:
    """One customer message, in its turn: settle the status and label, then escalate or answer. The
    message is marked handled with the bot's reply (one transaction), or once nothing is left to do."""
    conversation_id, text = message.conversation_id, message.text
    if scoring is None and not message.sentiment_label:  # labelled before its handler died: not twice
        scoring = in_background(score_text(rules.scoring, text))
    try:
        if asks_for_human(text, rules.handoff.phrases):  # hand over without waiting for the label
            conversation = await sync_to_async(_settle)(message, None)
            if conversation.status == ConversationStatus.BOT:
                await escalate(conversation_id, "the customer asked for a human")
            label = await scoring if scoring is not None else None
            if label is not None:
                await sync_to_async(_settle)(message, label)
        else:
            await _decide_and_answer(message, rules, await scoring if scoring is not None else None, owner)
    except Exception:  # not retried: a message that breaks its handler must not stop the conversation
        logger.exception("handling message %s of conversation %s failed", message.pk, conversation_id)
    finally:
        if scoring is not None:
            scoring.cancel()
    # Not on cancellation (the process is stopping): the message stays for the sweeper.
    await sync_to_async(turns.mark_handled)(message.pk)  # a no-op when the reply marked it


async def _decide_and_answer(message: Message, rules: WidgetRules, label: dict | None, owner: str) -> None:
    conversation_id = message.conversation_id
    conversation = await sync_to_async(_settle)(message, label)
    decision = decide(conversation, rules.handoff, message.text)
    if decision.escalate:
        await escalate(conversation_id, decision.reason)
    elif conversation.status == ConversationStatus.BOT:
        answered = await assistant.reply(conversation_id, answering=message.pk, owner=owner)
        if answered is not None and answered.handoff:  # it said "I don't know — shall I get someone?"
            await escalate(conversation_id, BOT_DID_NOT_KNOW)
