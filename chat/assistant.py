"""The bot's reply: the conversation's history through knowledge/replies.py (the deployment's knowledge
base, answer policy and checks, or its model on its own), streamed to the widget."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from chat import turns
from chat.conversations import append_message, conversation_group, reply_group, set_status
from chat.handoff import TOLD_BOT_UNAVAILABLE
from chat.models import Author, Conversation, ConversationStatus
from core.background import in_background
from knowledge.replies import ReplyResult, Sampling, Served, stream_reply
from store.inference.client import InferenceError, InferenceUnavailable
from store.models import DeploymentStatus

logger = logging.getLogger(__name__)

HISTORY_MESSAGES = 24
HISTORY_CHARACTERS = 6000  # ~1,500 tokens: leaves the model's context for the system prompt and reply
# Small dialogue models loop ("I'm here to help" ten times): a light OpenAI-style frequency penalty
# on the bot's replies. With the bundled SmolLM2 on the demo's questions, 0.4 took the share of
# distinct words in a 160-token answer from 0.21-0.45 to 0.47-0.69 without hurting the answers.
BOT_FREQUENCY_PENALTY = 0.4
ROLES: dict[str, str] = {Author.CUSTOMER: "user", Author.BOT: "assistant", Author.AGENT: "assistant"}

# The bot replies being written in this process, by conversation: set to stop one.
_stop_signals: dict[int, asyncio.Event] = {}


def stop_reply(conversation_id: int) -> bool:
    """Stop the bot's reply to this conversation if this process is writing one (an agent took over).

    Every consumer of the conversation calls this on a status change: the quick path when the
    customer's socket is in the process writing the reply. The reply also listens on its own channel
    (`_stop_when_told`), for when it runs where no socket of the conversation is (another web
    process, the sweeper's worker). True if a reply was stopped.
    """
    signal = _stop_signals.get(conversation_id)
    if signal is None:
        return False
    signal.set()
    return True


async def _stop_when_told(layer, conversation_id: int, stop: asyncio.Event) -> None:
    """Set `stop` when set_status announces a takeover on the conversation's reply group. Best effort
    (the doorbell may be lost): the status is checked again before the reply is stored."""
    channel, group = await layer.new_channel(), reply_group(conversation_id)
    try:
        await layer.group_add(group, channel)
        while not stop.is_set():
            if (await layer.receive(channel)).get("type") == "chat.stop_reply":
                stop.set()
    except Exception as error:
        logger.warning("the reply to conversation %s cannot hear takeovers: %s", conversation_id, error)
    finally:
        with contextlib.suppress(Exception):  # the membership expires by itself if Redis is away
            await asyncio.shield(layer.group_discard(group, channel))


def history(conversation: Conversation) -> list[dict]:
    """The recent turns, newest kept, trimmed to fit; it always starts with a customer turn."""
    messages = list(conversation.messages.filter(internal=False, author__in=list(ROLES))
                    .order_by("-seq")[:HISTORY_MESSAGES])
    turns: list[dict] = []
    used = 0
    for message in messages:
        if used + len(message.text) > HISTORY_CHARACTERS and turns:
            break
        turns.append({"role": ROLES[message.author], "content": message.text[:HISTORY_CHARACTERS]})
        used += len(message.text)
    turns.reverse()
    while turns and turns[0]["role"] != "user":
        turns.pop(0)
    return turns


def _prepare(conversation_id: int):
    conversation = Conversation.objects.select_related("widget__deployment__tuned_model",
                                                       "widget__deployment__base_model").get(pk=conversation_id)
    return conversation, conversation.widget.deployment, history(conversation)


def _finish(conversation_id: int, result: ReplyResult, answering: int | None, owner: str | None) -> bool:
    """Store the reply and mark the customer message it answers handled, in one transaction: a
    process that dies in between leaves neither, so the sweeper answers it once, not twice."""
    with transaction.atomic():
        if owner is not None and not turns.holds(conversation_id, owner):
            return False  # taken for dead and taken over: the new holder answers
        conversation = Conversation.objects.get(pk=conversation_id)
        if conversation.status != ConversationStatus.BOT:
            return False  # an agent took over while the bot was typing: their word wins
        record = result.record() if result.outcome != "generated" else {}
        append_message(conversation, Author.BOT, result.text.strip() or "…", knowledge=record)
        if answering is not None:
            turns.mark_handled(answering)
    return True


def _bot_unavailable(conversation_id: int) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    if conversation.status == ConversationStatus.BOT:
        set_status(conversation, ConversationStatus.NEEDS_HUMAN, reason="the bot was unavailable",
                   system_text=TOLD_BOT_UNAVAILABLE)


async def reply(conversation_id: int, answering: int | None = None, owner: str | None = None) -> ReplyResult | None:
    """Write, stream and store the bot's answer; on any serving failure, hand over to a human — never
    silence. Returns the stored reply (its `handoff` says the bot did not know and a person should
    take over), or None when nothing was stored. `answering`: the customer message it answers (marked
    handled with the reply); `owner`: the conversation's turn holder (chat/turns.py), checked on store."""
    conversation, deployment, turns = await sync_to_async(_prepare)(conversation_id)
    if not turns:
        return None
    layer, group = get_channel_layer(), conversation_group(conversation_id)
    if deployment.status != DeploymentStatus.ACTIVE:
        await sync_to_async(_bot_unavailable)(conversation_id)
        return None
    stop = _stop_signals[conversation_id] = asyncio.Event()
    listening = in_background(_stop_when_told(layer, conversation_id, stop))
    await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": True, "name": ""})
    result: ReplyResult | None = None
    try:
        # Closing the stream early (an agent took over) tells the worker to stop generating this row.
        async with contextlib.aclosing(stream_reply(Served.deployment(deployment), turns, source="widget",
                                                    sampling=Sampling(frequency_penalty=BOT_FREQUENCY_PENALTY))
                                       ) as stream:
            async for event in stream:
                if stop.is_set():
                    logger.info("bot reply for conversation %s stopped: an agent took over", conversation_id)
                    break
                if event.kind == "text" and event.text:
                    await layer.group_send(group, {"type": "chat.token", "text": event.text})
                elif event.kind == "done":
                    result = event.result
    except (InferenceError, InferenceUnavailable) as error:
        logger.warning("bot reply for conversation %s failed: %s", conversation_id, error)
        await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": False, "name": ""})
        await sync_to_async(_bot_unavailable)(conversation_id)
        return None
    finally:
        listening.cancel()
        if _stop_signals.get(conversation_id) is stop:
            del _stop_signals[conversation_id]
    await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": False, "name": ""})
    if result is None or stop.is_set():
        return None
    return result if await sync_to_async(_finish)(conversation_id, result, answering, owner) else None
