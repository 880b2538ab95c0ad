"""Start-up of the inference worker (queue `inference`)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.dispatch import Signal

logger = logging.getLogger(__name__)

#: Sent (with `engine`) once the engine has started and preloaded the deployed models: other apps warm
#: up what they serve through it (knowledge: its indexes and embedding models) without the store
#: knowing them.
engine_ready = Signal()


def _materialize_bundled_models() -> None:
    from store.catalog import CatalogError
    from store.models import FoundationModel, SourceKind
    from workers.models.loading import model_folder

    for model in FoundationModel.objects.filter(source_kind=SourceKind.PACKAGE_GGUF):
        try:
            model_folder(model)
        except CatalogError as error:
            logger.warning("cannot prepare %s: %s", model.slug, error)


def _prepare_engine() -> None:
    from store.models import Deployment, DeploymentStatus
    from workers.serving.runtime import ServingRuntime

    _materialize_bundled_models()
    runtime = ServingRuntime.get()
    deployments = Deployment.objects.filter(status=DeploymentStatus.ACTIVE).select_related("base_model")
    keys = sorted({deployment.model_key for deployment in deployments})
    if keys:
        logger.info("preloading %d deployed model(s): %s", len(keys), ", ".join(keys))
        runtime.engine.preload(keys)
    for receiver, error in engine_ready.send_robust(sender=runtime.__class__, engine=runtime.engine):
        if error is not None:
            logger.warning("warming up %s failed: %s", receiver, error)


def on_inference_worker_ready() -> None:
    from workers.models.loading import configure_torch_threads, pick_device

    configure_torch_threads()
    logger.info("inference worker ready on %s", pick_device(settings.INFERENCE_DEVICE))
    # transformers resolves its classes lazily, and that first resolution is not thread-safe: two threads
    # (this start-up and the first requests) importing at once saw "cannot import name
    # AutoModelForCausalLM". Resolve them here, once, before any other thread starts.
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401
    # Convert bundled GGUF weights once, start the engine and preload what is deployed — off the task
    # threads, so the worker takes requests at once (the first ones wait for their model to load).
    threading.Thread(target=_prepare_engine, name="prepare-engine", daemon=True).start()
