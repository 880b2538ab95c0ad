from __future__ import annotations

from channels.db import database_sync_to_async

from accounts.live_updates import LiveUpdatesConsumer
from finetune.models import Dataset, FineTuneJob


class JobUpdatesConsumer(LiveUpdatesConsumer):
    async def authorized_group(self, user, kwargs: dict) -> str | None:
        row = await database_sync_to_async(
            lambda: FineTuneJob.objects.filter(public_id=kwargs["public_id"]).values_list("pk", "organization_id")
            .first())()
        if row is None or not await self.is_member(user, row[1]):
            return None
        return f"finetune-job-{row[0]}"


class OrganizationJobsConsumer(LiveUpdatesConsumer):
    async def authorized_group(self, user, kwargs: dict) -> str | None:
        session = self.scope.get("session")
        org_id = session.get("active_organization_id") if session is not None else None
        if org_id is None:
            org_id = await database_sync_to_async(
                lambda: user.memberships.order_by("created_at", "pk").values_list("organization_id", flat=True)
                .first())()
        if org_id is None or not await self.is_member(user, org_id):
            return None
        return f"finetune-org-{org_id}"


class DatasetUpdatesConsumer(LiveUpdatesConsumer):
    async def authorized_group(self, user, kwargs: dict) -> str | None:
        row = await database_sync_to_async(
            lambda: Dataset.objects.filter(public_id=kwargs["public_id"]).values_list("pk", "organization_id")
            .first())()
        if row is None or not await self.is_member(user, row[1]):
            return None
        return f"finetune-dataset-{row[0]}"
