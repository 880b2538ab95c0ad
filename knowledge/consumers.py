from __future__ import annotations

from channels.db import database_sync_to_async

from accounts.live_updates import LiveUpdatesConsumer
from knowledge.models import KnowledgeBase
from knowledge.sources import knowledge_group


class KnowledgeUpdatesConsumer(LiveUpdatesConsumer):
    """Rings a knowledge base's pages when a source is added, embedded or goes live."""

    async def authorized_group(self, user, kwargs: dict) -> str | None:
        organization_id = await database_sync_to_async(
            lambda: KnowledgeBase.objects.filter(pk=kwargs["knowledge_base_id"]).values_list("organization_id",
                                                                                             flat=True).first())()
        if organization_id is None or not await self.is_member(user, organization_id):
            return None
        return knowledge_group(kwargs["knowledge_base_id"])

    async def knowledge_changed(self, event: dict) -> None:
        await self.forward(event)
