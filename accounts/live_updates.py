"""The live-update doorbell: tells a page "something changed, refresh".

Subclasses decide which group a user may join (members of the organization, admins by default); the page
then re-fetches its htmx partial, so the data itself always comes from the database through the normal,
permission-checked view.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.models import Membership
from core.consumers import JsonFrameConsumer


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
