"""Process-wide shutdown flag for long tasks inside Celery workers.

Celery's warm shutdown waits for running tasks; a training run can take an hour, so on
SIGTERM / Ctrl-C the worker raises this flag and the training loop checkpoints and returns.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

shutdown_requested = threading.Event()


def request_shutdown(reason: str = "") -> None:
    if not shutdown_requested.is_set():
        logger.info("worker shutting down (%s): asking running tasks to checkpoint and stop", reason or "signal")
    shutdown_requested.set()
