"""Start-up of the inference worker (queue `inference`)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)


def _materialize_bundled_models() -> None:
    from store.catalog import CatalogError
    from store.models import FoundationModel, SourceKind
    from store.serving.loading import model_folder

    for model in FoundationModel.objects.filter(source_kind=SourceKind.PACKAGE_GGUF):
        try:
            model_folder(model)
        except CatalogError as error:
            logger.warning("cannot prepare %s: %s", model.slug, error)


def on_inference_worker_ready() -> None:
    from store.serving.loading import configure_torch_threads, pick_device

    configure_torch_threads()
    logger.info("inference worker ready on %s", pick_device(settings.INFERENCE_DEVICE))
    # Convert bundled GGUF weights once, off the task threads, so the first request is fast.
    threading.Thread(target=_materialize_bundled_models, name="materialize-models", daemon=True).start()
