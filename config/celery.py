"""The Celery app. Workers import this module, so it only declares: it starts nothing."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("gptstore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["core", "workers.serving", "finetune", "knowledge", "chat"])

TRAINING_QUEUE = "training"
INFERENCE_QUEUE = "inference"

app.conf.task_routes = {
    # The reaper must run while the single training slot is busy (or dead): the thread-pool worker runs it.
    "finetune.tasks.reap_stale_jobs": {"queue": INFERENCE_QUEUE},
    "finetune.tasks.compute_token_stats": {"queue": INFERENCE_QUEUE},
    "finetune.tasks.*": {"queue": TRAINING_QUEUE},
    "store.serving.tasks.*": {"queue": INFERENCE_QUEUE},
    "knowledge.tasks.*": {"queue": INFERENCE_QUEUE},
    # The chat sweeper answers customers, so it runs where bot replies are served from.
    "chat.tasks.*": {"queue": INFERENCE_QUEUE},
}
# Task names are the contract between web and workers: they stay "store.serving.tasks.*" although the
# engine's tasks live in workers/serving/tasks.py (each declares its name). The web sends by name and
# never imports a worker module; workers import these at start (the web never does): the start-up of
# each queue's services.
app.conf.imports = ("workers.startup",)


@worker_init.connect
def _use_one_event_loop(**_: object) -> None:
    # Workers broadcast to the channel layer from one long-lived loop thread (core/broadcast.py).
    from core.broadcast import use_background_loop

    use_background_loop()


@worker_shutting_down.connect
def _stop_worker_services(sig: str = "", **_: object) -> None:
    from core.worker_lifecycle import request_shutdown

    request_shutdown(sig)
