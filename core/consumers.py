"""WebSocket consumers' common ground: how a frame from a client is read.

JsonFrameConsumer reads every incoming frame through core.text.decode_json and answers anything it
cannot use with an `error` frame, so a bad frame never closes the socket (channels' own JSON consumer
raises, and the socket dies with 1011). A frame whose handling meets a database outage (core/db_outage.py
decides what is one) gets an `error` frame with code `database_unavailable`, and the socket stays open.
Events (group messages, socket frames) go straight to their handler. Channels' own dispatch first runs
close_old_connections on the thread all of the process's database work shares, so every frame and every
doorbell queued behind that work (bot replies, turn claims, other sockets' replays) before it was
handled: chat acks took seconds under load (bench/load.py). Consumers built on this one do every
database call through database_sync_to_async, which closes old connections on the thread the call runs on.
The live-update doorbell, which checks memberships, is
accounts/live_updates.py: the ground floor knows no app.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import close_old_connections

from core.db_outage import is_outage, unavailable_frame
from core.text import InvalidText, decode_json

logger = logging.getLogger(__name__)

# No frame of ours comes near this (a 2,000-character chat message, even \u-escaped, is ~12 KB);
# anything longer is refused before it is parsed.
MAX_FRAME_CHARS = 64 * 1024


class JsonFrameConsumer(AsyncJsonWebsocketConsumer):
    """Frames are JSON objects with a "type"; anything else gets an `error` frame and the socket stays open."""

    async def dispatch(self, message: dict) -> None:
        """The event's handler, at once: not after a close_old_connections on the shared database thread
        (see the module's docstring)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self.send_error("bad_frame", "Frames must be JSON text, not binary.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.send_error("too_large", f"Frames are limited to {MAX_FRAME_CHARS} characters "
                                               f"(this one has {len(text_data)}).")
            return
        try:
            content = decode_json(text_data)
        except InvalidText as error:
            await self.send_error("bad_frame", str(error))
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("bad_frame", 'A frame is a JSON object with a string "type".')
            return
        try:
            await self.receive_json(content, **kwargs)
        except Exception as error:
            if not is_outage(error):
                raise
            await self._database_unavailable(content, error)

    async def _database_unavailable(self, content: dict, error: Exception) -> None:
        """A frame that met a database outage is answered, and the socket stays open for the next one.

        The broken connection lives in the thread the consumers' database calls share; it is closed there,
        so the next frame opens a fresh one and works as soon as the database is back."""
        logger.warning("database unavailable while %s handled a %r frame: %s", self.__class__.__name__,
                       content["type"], error)
        await sync_to_async(close_old_connections)()
        client_id = content.get("client_id")
        await self.send_json(unavailable_frame(**({"client_id": client_id} if isinstance(client_id, str) else {})))

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    async def unknown_frame(self, kind: str) -> None:
        await self.send_error("bad_frame", f"Unknown frame type {kind[:40]!r}.")

