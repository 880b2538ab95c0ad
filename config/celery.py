"""The Celery app. Workers import this module, so it only declares: it starts nothing."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("gptstore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["core", "store.serving", "finetune", "knowledge", "chat"])

TRAINING_QUEUE = "training"
INFERENCE_QUEUE = "inference"

app.conf.task_routes = {
    # The reaper must run while the single training slot is busy (or dead): the thread-pool worker runs it.
    "finetune.tasks.reap_stale_jobs": {"queue": INFERENCE_QUEUE},
    "finetune.tasks.compute_token_stats": {"queue": INFERENCE_QUEUE},
    "finetune.tasks.*": {"queue": TRAINING_QUEUE},
    "store.serving.tasks.*": {"queue": INFERENCE_QUEUE},
    "knowledge.tasks.*": {"queue": INFERENCE_QUEUE},
}


def consumed_queues(sender: object) -> set[str]:
    consumer = getattr(sender, "task_consumer", None)
    queues = getattr(consumer, "queues", None) or []
    return {queue.name for queue in queues}


@worker_init.connect
def _use_one_event_loop(**_: object) -> None:
    # Workers broadcast to the channel layer from one long-lived loop thread (core/broadcast.py).
    from core.broadcast import use_background_loop

    use_background_loop()


@worker_ready.connect
def _start_worker_services(sender: object = None, **_: object) -> None:
    # Heavy imports happen here, after the worker is up, never at import time.
    queues = consumed_queues(sender)
    if TRAINING_QUEUE in queues:
        from finetune.worker import on_training_worker_ready

        on_training_worker_ready()
    if INFERENCE_QUEUE in queues:
        from store.serving.worker import on_inference_worker_ready

        on_inference_worker_ready()


@worker_shutting_down.connect
def _stop_worker_services(sig: str = "", **_: object) -> None:
    from core.worker_lifecycle import request_shutdown

    request_shutdown(sig)
