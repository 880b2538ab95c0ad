"""WebSocket consumers' common ground: how a frame from a client is read, and the live-update doorbell.

JsonFrameConsumer reads every incoming frame through core.text.decode_json and answers anything it
cannot use with an `error` frame, so a bad frame never closes the socket (channels' own JSON consumer
raises, and the socket dies with 1011). The doorbell, LiveUpdatesConsumer, tells a page "something
changed, refresh": subclasses decide which group a user may join; the page then re-fetches its htmx
partial, so the data itself always comes from the database through the normal, permission-checked view.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import Membership
from core.text import InvalidText, decode_json

# No frame of ours comes near this (a 2,000-character chat message, even \u-escaped, is ~12 KB);
# anything longer is refused before it is parsed.
MAX_FRAME_CHARS = 64 * 1024


class JsonFrameConsumer(AsyncJsonWebsocketConsumer):
    """Frames are JSON objects with a "type"; anything else gets an `error` frame and the socket stays open."""

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
        await self.receive_json(content, **kwargs)

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    async def unknown_frame(self, kind: str) -> None:
        await self.send_error("bad_frame", f"Unknown frame type {kind[:40]!r}.")


class LiveUpdatesConsumer(JsonFrameConsumer):
    admins_only = True

    async def connect(self) -> None:
        user = self.scope.get("user")
        group = None
        if user is not None and user.is_authenticated:
            group = await self.authorized_group(user, self.scope["url_route"]["kwargs"])
        if group is None:
            await self.close(code=4403)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs: Any) -> None:
        """The page only listens; a ping (a proxy's or a test's keep-alive) is answered."""
        if content["type"] == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.unknown_frame(content["type"])

    async def authorized_group(self, user, kwargs: dict) -> str | None:
        raise NotImplementedError

    @database_sync_to_async
    def is_member(self, user, organization_id: int) -> bool:
        memberships = Membership.objects.filter(user=user, organization_id=organization_id)
        if self.admins_only:
            memberships = memberships.filter(role="admin")
        return memberships.exists()

    async def forward(self, event: dict) -> None:
        await self.send_json({"type": event["type"]})

    # group_send({"type": "job.changed"}) dispatches to job_changed, etc.
    job_changed = forward
    dataset_changed = forward
    # The channel layer lost and restored this socket's group (a Redis restart): rings the page, which
    # re-fetches and so catches up on whatever changed while the doorbell was deaf.
    layer_reconnected = forward
