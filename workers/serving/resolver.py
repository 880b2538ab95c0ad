"""Turn an engine model key into what to load (worker-only; reads the database)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.db import close_old_connections
from django.db.models.signals import post_delete, post_save

from finetune.checkpoint_models import KEY_PREFIX as CHECKPOINT_PREFIX
from finetune.checkpoint_models import SERVABLE_FOLDER
from finetune.models import JobCheckpoint
from store.artifacts import ArtifactMissing, local_folder, tuned_name
from store.inference.protocol import INTERNAL, EngineError, ModelSpec
from store.models import FoundationModel, Method, Task, TunedModel
from workers.models.loading import model_folder

logger = logging.getLogger(__name__)

_KINDS: dict[str, str] = {Task.DIALOGUE: "causal", Task.SENTIMENT: "classifier", Task.EMBEDDING: "encoder"}

# Every request resolves its model key. For a catalog model that read two rows and statted its files on
# each request: ~1.2 ms alone and 2-4 ms of a retrieval's ~25 on the stack, where the engine thread
# competes with the relay and the task threads. The catalog changes when it is synced (a deploy, before
# the workers restart) or edited in this process (the signals below), so a catalog key's spec is kept
# for CATALOG_SPEC_SECONDS. Tuned and checkpoint keys are resolved every time: a deleted or re-tuned
# model must be seen on the next request. (A dict's get, set and clear are atomic: no lock needed.)
CATALOG_SPEC_SECONDS = 30.0
_catalog_specs: dict[str, tuple[float, ModelSpec]] = {}


def forget_catalog_specs(**_signal: object) -> None:
    _catalog_specs.clear()


post_save.connect(forget_catalog_specs, sender=FoundationModel, dispatch_uid="resolver-catalog-saved")
post_delete.connect(forget_catalog_specs, sender=FoundationModel, dispatch_uid="resolver-catalog-deleted")


def _catalog_model(slug: str) -> FoundationModel:
    base = FoundationModel.objects.filter(slug=slug).first()
    if base is None:
        raise EngineError("model_not_found", f"no catalog model {slug!r}")
    return base


def resolve_model_key(key: str) -> ModelSpec:
    """`base:<catalog slug>` (a chat model), `encoder:<catalog slug>` (its embeddings) or `tuned:<id>`.
    Called from the engine thread."""
    kind = key.partition(":")[0]
    if kind not in ("base", "encoder"):
        return _resolve(key)
    now = time.monotonic()
    held = _catalog_specs.get(key)
    if held is not None and now - held[0] < CATALOG_SPEC_SECONDS:
        return held[1]
    spec = _resolve(key)
    _catalog_specs[key] = (now, spec)
    return spec


def _resolve(key: str) -> ModelSpec:
    close_old_connections()
    kind, _, ident = key.partition(":")
    if kind == "base":
        base = _catalog_model(ident)
        if not base.is_decoder:
            raise EngineError("model_not_found", f"{ident} has no generation head; tune it for sentiment first")
        return ModelSpec(key=key, kind="causal", base_folder=str(model_folder(base)))
    if kind == "encoder":
        base = _catalog_model(ident)
        if not base.supports_embedding:
            raise EngineError("model_not_found", f"{ident} does not make sentence embeddings")
        return ModelSpec(key=key, kind="encoder", base_folder=str(model_folder(base)))
    if kind == "tuned":
        tuned = TunedModel.objects.select_related("base").filter(pk=int(ident) if ident.isdigit() else -1).first()
        if tuned is None:
            raise EngineError("model_not_found", f"no tuned model {ident!r}")
        try:
            # Fetched into this worker's cache on first use when the storage is not a local folder.
            adapter_folder = local_folder(tuned_name(tuned))
        except ArtifactMissing as error:
            logger.error("cannot serve %s: %s", key, error)  # the operator's log names the storage
            raise EngineError(INTERNAL, f"the weights of {tuned.slug} are missing from the artifact storage; "
                                        "the operator's worker log says where they were looked for") from None
        return _adapted_spec(key, tuned.task, tuned.base, adapter_folder, tuned.method, list(tuned.labels))
    if f"{kind}:" == CHECKPOINT_PREFIX:
        return _checkpoint_spec(key, ident)
    raise EngineError("model_not_found", f"unknown model key {key!r}")


def _checkpoint_spec(key: str, ident: str) -> ModelSpec:
    """A fine-tuning job's checkpoint (finetune/checkpoint_models.py): its servable folder on the training
    workers' disk (ARTIFACTS_DIR), which this worker must share to serve it."""
    checkpoint = JobCheckpoint.objects.select_related("job__base_model", "job__dataset").filter(
        pk=int(ident) if ident.isdigit() else -1).first()
    if checkpoint is None:
        raise EngineError("model_not_found", f"no checkpoint {ident!r}")
    job = checkpoint.job
    folder = Path(checkpoint.path) / SERVABLE_FOLDER
    if not folder.is_dir():
        logger.error("cannot serve %s: %s does not exist", key, folder)
        gone = "were deleted" if not Path(checkpoint.path).exists() else "predate servable checkpoints"
        raise EngineError("model_not_found", f"the files of checkpoint step {checkpoint.step} of {job.openai_id} "
                                             f"{gone} (or are on another machine); use a newer checkpoint or the "
                                             "job's tuned model")
    return _adapted_spec(key, job.task, job.base_model, folder, job.method,
                         list(job.dataset.labels) if job.task == Task.SENTIMENT else [])


def _adapted_spec(key: str, task: str, base: FoundationModel, folder: Path | str, method: str,
                  labels: list[str]) -> ModelSpec:
    """A base model with tuned weights (an adapter folder, or a full fine-tune's own folder): a tuned model
    or one of its job's checkpoints."""
    return ModelSpec(key=key, kind=_KINDS[task], base_folder=str(model_folder(base)), adapter_folder=str(folder),
                     adapter_type=Method.FULL if method == Method.FULL else method, labels=labels)
