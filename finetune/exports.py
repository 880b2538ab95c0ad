"""Merge a LoRA-family tuned model into a full copy of its base, for download (worker-only)."""

from __future__ import annotations

import logging
import shutil

from store.models import TunedModel
from store.tuned import artifact_folder

logger = logging.getLogger(__name__)


def merge_for_download(tuned_id: int) -> None:
    from finetune.training.export import merge_and_export
    from store.serving.loading import model_folder

    tuned = TunedModel.objects.select_related("base").get(pk=tuned_id)
    folder = artifact_folder(tuned)
    staging, target = folder / "merged.partial", folder / "merged"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        merge_and_export(model_folder(tuned.base), folder, staging, tuned.task, list(tuned.labels))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        TunedModel.objects.filter(pk=tuned_id).update(merged_status="ready", merged_error="")
    except Exception as error:
        logger.exception("merging tuned model %s failed", tuned_id)
        shutil.rmtree(staging, ignore_errors=True)
        TunedModel.objects.filter(pk=tuned_id).update(merged_status="failed",
                                                      merged_error=f"{error.__class__.__name__}: {error}")
