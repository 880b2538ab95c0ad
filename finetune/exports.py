"""Merge a LoRA-family tuned model into a full copy of its base, for download (worker-only).

Idempotent: the merge is claimed with a conditional UPDATE (store/merging.py), so a redelivered or
duplicated task does nothing, and the staging folder is rebuilt from scratch on every attempt. The adapter
is read from the artifact storage and the merged model published there (store/artifacts.py), so any
training worker can merge and any web process can serve the download.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

from store import artifacts, merging
from store.models import TunedModel

logger = logging.getLogger(__name__)


class _MergeHeartbeat(threading.Thread):
    """Keeps merge_heartbeat_at fresh while the (minutes-long, uninterruptible) merge runs, so the reaper
    can tell a slow merge from one whose worker was killed."""

    def __init__(self, tuned_id: int) -> None:
        super().__init__(name=f"merge-heartbeat-{tuned_id}", daemon=True)
        self.tuned_id = tuned_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.FINETUNE_HEARTBEAT_SECONDS):
                try:
                    if not merging.merge_heartbeat(self.tuned_id):
                        return
                except DatabaseError:
                    logger.warning("merge heartbeat failed for tuned model %s", self.tuned_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connection


def merge_for_download(tuned_id: int) -> None:
    if not merging.claim_merge(tuned_id):
        return  # merged already, or another worker has it
    heartbeat = _MergeHeartbeat(tuned_id)
    heartbeat.start()
    try:
        _merge(tuned_id)
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=30)


def _merge(tuned_id: int) -> None:
    from workers.models.loading import model_folder
    from workers.training.export import merge_and_export

    tuned = TunedModel.objects.select_related("base").get(pk=tuned_id)
    # This worker's own scratch space (ARTIFACTS_DIR is local to each worker); the result is published.
    staging = Path(settings.ARTIFACTS_DIR) / "merges" / f"{tuned.short_id}.partial"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        adapter = artifacts.local_folder(artifacts.tuned_name(tuned))
        merge_and_export(model_folder(tuned.base), adapter, staging, tuned.task, list(tuned.labels))
        artifacts.publish_folder(staging, artifacts.merged_name(tuned), scratch=True)
    except Exception as error:
        logger.exception("merging tuned model %s failed", tuned_id)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, artifacts.ArtifactMissing):
            message = str(error)
        elif isinstance(error, OSError) and error.filename and error.strerror:
            message = f"Cannot write the merged model to {error.filename}: {error.strerror}."
        else:
            message = f"{error.__class__.__name__}: {error}"
        merging.finish_merge(tuned_id, message)
        return
    # A database error here propagates and the merge stays `running`; its heartbeat stops with this
    # call, so the reaper queues it again (the merge is redone: the folder is rebuilt from scratch).
    merging.finish_merge(tuned_id)
