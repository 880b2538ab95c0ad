"""Turn an engine model key into what to load (worker-only; reads the database)."""

from __future__ import annotations

from django.db import close_old_connections

from store.inference.protocol import EngineError, ModelSpec
from store.models import FoundationModel, Method, Task, TunedModel
from store.tuned import artifact_folder
from workers.models.loading import model_folder

_KINDS: dict[str, str] = {Task.DIALOGUE: "causal", Task.SENTIMENT: "classifier", Task.EMBEDDING: "encoder"}


def resolve_model_key(key: str) -> ModelSpec:
    """`base:<catalog slug>` (a chat model), `encoder:<catalog slug>` (its embeddings) or `tuned:<id>`.
    Called from the engine thread."""
    close_old_connections()
    kind, _, ident = key.partition(":")
    if kind == "base":
        base = FoundationModel.objects.filter(slug=ident).first()
        if base is None:
            raise EngineError("model_not_found", f"no catalog model {ident!r}")
        if not base.is_decoder:
            raise EngineError("model_not_found", f"{ident} has no generation head; tune it for sentiment first")
        return ModelSpec(key=key, kind="causal", base_folder=str(model_folder(base)))
    if kind == "encoder":
        base = FoundationModel.objects.filter(slug=ident).first()
        if base is None:
            raise EngineError("model_not_found", f"no catalog model {ident!r}")
        if not base.supports_embedding:
            raise EngineError("model_not_found", f"{ident} does not make sentence embeddings")
        return ModelSpec(key=key, kind="encoder", base_folder=str(model_folder(base)))
    if kind == "tuned":
        tuned = TunedModel.objects.select_related("base").filter(pk=int(ident) if ident.isdigit() else -1).first()
        if tuned is None:
            raise EngineError("model_not_found", f"no tuned model {ident!r}")
        return ModelSpec(
            key=key,
            kind=_KINDS[tuned.task],
            base_folder=str(model_folder(tuned.base)),
            adapter_folder=str(artifact_folder(tuned)),
            adapter_type=Method.FULL if tuned.method == Method.FULL else tuned.method,
            labels=list(tuned.labels),
        )
    raise EngineError("model_not_found", f"unknown model key {key!r}")
