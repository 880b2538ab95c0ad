"""The bot's reply: the conversation's history through the serving engine, streamed to the widget."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat.conversations import append_message, conversation_group, set_status
from chat.handoff import TOLD_BOT_UNAVAILABLE
from chat.models import Author, Conversation, ConversationStatus
from store.api.completions import with_system_prompt
from store.models import DeploymentStatus
from store.serving.client import InferenceError, InferenceUnavailable, new_request_id, stream_generation
from store.serving.protocol import GenerationRequest
from store.usage import record_usage

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

    Every consumer of the conversation calls this on a status change; only the process that runs
    the reply finds it. True if a reply was stopped.
    """
    signal = _stop_signals.get(conversation_id)
    if signal is None:
        return False
    signal.set()
    return True


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


def _finish(conversation_id: int, text: str, result: dict, deployment_slug: str) -> bool:
    conversation = Conversation.objects.get(pk=conversation_id)
    if conversation.status != ConversationStatus.BOT:
        return False  # an agent took over while the bot was typing: their word wins
    append_message(conversation, Author.BOT, text.strip() or "…")
    record_usage(conversation.organization_id, deployment_slug, result.get("prompt_tokens", 0),
                 result.get("completion_tokens", 0), source="widget")
    return True


def _bot_unavailable(conversation_id: int) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    if conversation.status == ConversationStatus.BOT:
        set_status(conversation, ConversationStatus.NEEDS_HUMAN, reason="the bot was unavailable",
                   system_text=TOLD_BOT_UNAVAILABLE)


async def reply(conversation_id: int) -> None:
    """Generate and store the bot's answer; on any serving failure, hand over to a human — never silence."""
    conversation, deployment, turns = await sync_to_async(_prepare)(conversation_id)
    if not turns:
        return
    layer, group = get_channel_layer(), conversation_group(conversation_id)
    if deployment.status != DeploymentStatus.ACTIVE:
        await sync_to_async(_bot_unavailable)(conversation_id)
        return
    request = GenerationRequest(
        request_id=new_request_id(), model_key=deployment.model_key,
        messages=with_system_prompt(turns, deployment.system_prompt), max_tokens=deployment.max_tokens,
        temperature=deployment.temperature, top_p=deployment.top_p, frequency_penalty=BOT_FREQUENCY_PENALTY)
    stop = _stop_signals[conversation_id] = asyncio.Event()
    await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": True, "name": ""})
    text, result = "", None
    try:
        # Closing the stream early (an agent took over) tells the worker to stop generating this row.
        async with contextlib.aclosing(stream_generation(request)) as stream:
            async for event in stream:
                if stop.is_set():
                    logger.info("bot reply for conversation %s stopped: an agent took over", conversation_id)
                    break
                if event.kind == "text":
                    text += event.text
                    await layer.group_send(group, {"type": "chat.token", "text": event.text})
                elif event.kind == "done":
                    result = event.info or {}
                    text = result.get("text", text)
    except (InferenceError, InferenceUnavailable) as error:
        logger.warning("bot reply for conversation %s failed: %s", conversation_id, error)
        await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": False, "name": ""})
        await sync_to_async(_bot_unavailable)(conversation_id)
        return
    finally:
        if _stop_signals.get(conversation_id) is stop:
            del _stop_signals[conversation_id]
    await layer.group_send(group, {"type": "chat.typing", "who": "bot", "typing": False, "name": ""})
    if result is not None and not stop.is_set():
        await sync_to_async(_finish)(conversation_id, text, result, deployment.slug)
