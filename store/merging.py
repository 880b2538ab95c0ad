"""The state of "merge and export" (LoRA into a full copy of its base): queue, claim, heartbeat, reap.

Web-safe (no torch): the page and the reaper call this; the merge itself runs in the training worker
(finetune/exports.py). Every transition is a conditional UPDATE, so a re-queued merge, a redelivered
task and the reaper never run one merge twice at the same time:

    "" / ready / failed --request--> pending --claim--> running --finish--> ready | failed
    pending or running with a stale heartbeat (its worker is gone) --request (page) or reap--> pending
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from core.queue import send_task
from store.models import TunedModel

logger = logging.getLogger(__name__)

MERGE_TASK = "finetune.tasks.merge_tuned_model"
IN_PROGRESS = ("pending", "running")
# A merge that takes its worker down every time (out of memory) must not be re-queued forever.
MERGE_ATTEMPTS = 3


def stale_cutoff() -> datetime:
    return timezone.now() - timedelta(seconds=settings.STALE_JOB_SECONDS)


def _stalled() -> Q:
    return Q(merged_status__in=IN_PROGRESS) & (Q(merge_heartbeat_at__lt=stale_cutoff()) | Q(merge_heartbeat_at=None))


def merge_is_stalled(tuned: TunedModel) -> bool:
    """Queued or merging, but nothing happened for STALE_JOB_SECONDS: its worker is gone (or the queue is)."""
    return tuned.merged_status in IN_PROGRESS and (
        tuned.merge_heartbeat_at is None or tuned.merge_heartbeat_at < stale_cutoff())


def enqueue_merge(tuned_id: int) -> None:
    """Call after the UPDATE that made the merge `pending` is committed (callers run in autocommit), so the
    worker finds it. Sent by name: the store app never imports the worker's modules (and in the web
    process the task is not registered at all)."""
    send_task(MERGE_TASK, tuned_id)


def request_merge(tuned_id: int) -> bool:
    """Queue a merge unless a live one is queued or running. False when one is (nothing is queued twice)."""
    queued = TunedModel.objects.filter(pk=tuned_id).filter(~Q(merged_status__in=IN_PROGRESS) | _stalled()).update(
        merged_status="pending", merged_error="", merge_heartbeat_at=timezone.now(), merge_attempts=0)
    if queued:
        enqueue_merge(tuned_id)
    return queued == 1


def claim_merge(tuned_id: int) -> bool:
    """Take a queued merge; exactly one caller wins. A redelivered or duplicate task finds nothing to take."""
    return TunedModel.objects.filter(pk=tuned_id, merged_status="pending").update(
        merged_status="running", merge_heartbeat_at=timezone.now(), merge_attempts=F("merge_attempts") + 1) == 1


def merge_heartbeat(tuned_id: int) -> bool:
    return TunedModel.objects.filter(pk=tuned_id, merged_status="running").update(
        merge_heartbeat_at=timezone.now()) == 1


def finish_merge(tuned_id: int, error: str = "") -> bool:
    """Running -> ready (no error) or failed (with the message the page shows)."""
    return TunedModel.objects.filter(pk=tuned_id, merged_status="running").update(
        merged_status="failed" if error else "ready", merged_error=error, merge_heartbeat_at=None) == 1


def reap_stalled_merges() -> list[int]:
    """Merges whose worker stopped heartbeating while merging are queued again, at most MERGE_ATTEMPTS times;
    then they fail with a message, so the page offers the button again instead of "merging…" forever."""
    requeued = []
    for tuned in TunedModel.objects.filter(_stalled(), merged_status="running").only("pk", "merge_attempts"):
        stalled = TunedModel.objects.filter(_stalled(), pk=tuned.pk, merged_status="running")
        if tuned.merge_attempts >= MERGE_ATTEMPTS:
            stalled.update(merged_status="failed", merge_heartbeat_at=None, merged_error=(
                f"The worker stopped while merging, {tuned.merge_attempts} times in a row (out of memory?). "
                "Merge again to retry."))
        elif stalled.update(merged_status="pending", merge_heartbeat_at=timezone.now()):
            enqueue_merge(tuned.pk)
            requeued.append(tuned.pk)
    if requeued:
        logger.warning("requeued merges whose worker stopped: %s", requeued)
    return requeued
