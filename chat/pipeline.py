"""What happens after a customer message is stored: handoff rules, sentiment, the bot's reply.

Runs in the web process that received the message, one message at a time per conversation (an
asyncio lock), so a quick second message waits for the first reply instead of interleaving.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import assistant, presence
from chat.conversations import conversation_group, set_status
from chat.handoff import TOLD_HUMAN_IS_COMING, TOLD_NOBODY_ONLINE, asks_for_human, decide
from chat.models import Conversation, ConversationStatus
from chat.sentiment import score_message

logger = logging.getLogger(__name__)

_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


def _lock(conversation_id: int) -> asyncio.Lock:
    lock = _locks.get(conversation_id)
    if lock is None:
        lock = _locks[conversation_id] = asyncio.Lock()
    return lock


def _load(conversation_id: int) -> Conversation:
    return Conversation.objects.select_related("widget").get(pk=conversation_id)


async def escalate(conversation_id: int, reason: str) -> None:
    conversation = await sync_to_async(_load)(conversation_id)
    online = await presence.agents_online(conversation.organization_id)
    await sync_to_async(set_status)(conversation, ConversationStatus.NEEDS_HUMAN, reason=reason,
                                    system_text=TOLD_HUMAN_IS_COMING if online else TOLD_NOBODY_ONLINE)
    if not online:
        await get_channel_layer().group_send(conversation_group(conversation_id), {"type": "chat.ask_email"})


async def handle_customer_message(conversation_id: int, message_id: int, text: str) -> None:
    async with _lock(conversation_id):
        try:
            conversation = await sync_to_async(_load)(conversation_id)
            if conversation.status == ConversationStatus.RESOLVED:
                conversation = await sync_to_async(set_status)(conversation, ConversationStatus.BOT)
            if conversation.status == ConversationStatus.BOT and asks_for_human(text, conversation.widget.phrases):
                await escalate(conversation_id, "the customer asked for a human")
                await score_message(message_id)
                return
            await score_message(message_id)
            conversation = await sync_to_async(_load)(conversation_id)
            decision = decide(conversation, conversation.widget, text)
            if decision.escalate:
                await escalate(conversation_id, decision.reason)
            elif conversation.status == ConversationStatus.BOT:
                await assistant.reply(conversation_id)
        except Exception:
            logger.exception("handling message %s of conversation %s failed", message_id, conversation_id)
