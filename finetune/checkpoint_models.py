"""A fine-tuning job's checkpoints as callable /v1 models: `ft:<base>:<org>:<suffix>:<job>:ckpt-step-<n>`.

Web-safe. OpenAI names a checkpoint this way in `fine_tuned_model_checkpoint` and serves it like any
tuned model (without listing it in GET /v1/models). The id is made here and resolved here; the store's
resolver (store/api/targets.py) asks this lookup for ids it does not know itself. The engine loads a
checkpoint by its key `checkpoint:<pk>` (workers/serving/resolver.py): the servable `model/` folder the
training worker writes into every checkpoint (workers/training/checkpoints.py).
"""

from __future__ import annotations

import re

from finetune.models import FineTuneJob, JobCheckpoint
from store.api.targets import Target

KEY_PREFIX = "checkpoint:"
SERVABLE_FOLDER = "model"  # inside a checkpoint's folder: what the engine loads
# The job part is the first 8 characters of the job's public id (hex); the full id is compared after the lookup.
_CHECKPOINT_ID = re.compile(r"^ft:.+:(?P<job>[0-9a-f]{8}):ckpt-step-(?P<step>[0-9]{1,9})$")


def checkpoint_model_id(job: FineTuneJob, checkpoint: JobCheckpoint) -> str:
    return (f"ft:{job.base_model.slug}:{job.organization.slug}:{job.suffix}:{job.public_id[:8]}"
            f":ckpt-step-{checkpoint.step}")


def engine_key(checkpoint: JobCheckpoint) -> str:
    return f"{KEY_PREFIX}{checkpoint.pk}"


def find_checkpoint(organization_id: int, model_id: str) -> JobCheckpoint | None:
    """The organization's checkpoint named `model_id`; None for unknown ids and other organizations' alike."""
    match = _CHECKPOINT_ID.match(model_id)
    if match is None:
        return None
    candidates = JobCheckpoint.objects.filter(
        job__organization_id=organization_id, job__public_id__startswith=match["job"], step=int(match["step"]),
    ).select_related("job__base_model", "job__organization", "job__tuned_model")
    return next((c for c in candidates if checkpoint_model_id(c.job, c) == model_id), None)


def checkpoint_target(organization_id: int, model_id: str) -> Target | None:
    checkpoint = find_checkpoint(organization_id, model_id)
    if checkpoint is None:
        return None
    job = checkpoint.job
    # A finished job's tuned model knows the system prompt its training rows used; a running one's does not yet.
    prompt = job.tuned_model.default_system_prompt if job.tuned_model else ""
    return Target(model_id=model_id, kind="tuned", task=job.task, model_key=engine_key(checkpoint),
                  owned_by=job.organization.slug, created=int(checkpoint.created_at.timestamp()),
                  root=job.base_model.slug, parent=job.parent_model_name or None, system_prompt=prompt)
