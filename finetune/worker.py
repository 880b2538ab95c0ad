"""Start-up of the training worker (queue `training`)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def on_training_worker_ready() -> None:
    from django.conf import settings

    from workers.models.loading import configure_torch_threads, pick_device

    configure_torch_threads()
    logger.info("training worker ready on %s", pick_device(settings.TRAINING_DEVICE))
