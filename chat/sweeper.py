"""Customer messages a dead process left unscored or unanswered: found and handled, exactly once.

A web process that dies between storing a customer message and answering it leaves the message
unhandled (chat/models.py `handled_at`) and, perhaps, the conversation's turn claimed with a claim
nobody renews. Celery beat runs `sweep` every few seconds in an inference worker (chat/tasks.py): it
takes the turn of each such conversation once it is free or stale (chat/turns.py) and runs the same
pipeline a web process runs. The turn claim and the handled mark, stored with the bot's reply, are
what make it once: two sweeps, or a sweep and a web process, never handle a message twice.
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import connections

from chat import pipeline, turns

logger = logging.getLogger(__name__)

# A message younger than this is still its own web process's to take (it claims the turn at once).
GRACE_SECONDS = 15.0
CONVERSATIONS_PER_SWEEP = 50
# One sweep's owner name per worker process: a sweep that overlaps the previous one (a slow reply)
# finds that one's conversations claimed, not stale, and leaves them to it.
OWNER = turns.process_owner("sweeper")


async def sweep(grace_seconds: float = GRACE_SECONDS, limit: int = CONVERSATIONS_PER_SWEEP) -> int:
    """Handle what was left behind; returns how many customer messages were handled."""
    handled = 0
    try:
        for conversation_id in await sync_to_async(turns.left_behind)(grace_seconds, limit):
            # One conversation after another: a sweep is rare and small, and the replies share the
            # inference workers with the live chats.
            count = await pipeline.take_turn(conversation_id, OWNER)
            if count:
                logger.info("answered %s message(s) of conversation %s left by a process that stopped",
                            count, conversation_id)
            handled += count
    finally:
        # The database thread's connection is not the Celery task's, which Celery closes: close it
        # here, so a worker holds no idle connection between sweeps (nor a broken one after a restart).
        await sync_to_async(connections.close_all)()
    return handled
