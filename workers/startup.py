"""What a Celery worker does once it is up: the workers' composition root.

Celery imports this module in worker processes only (config/celery.py names it in `imports`, which
workers load at start and the web never does), so it may reach every app and the engine: the start-up of
the queue's services, and the knowledge warm-up hooked to the engine being ready. Heavy imports still
wait for the signal, so a worker takes no torch import before it has connected.
"""

from __future__ import annotations

from celery.signals import worker_ready

from config.celery import INFERENCE_QUEUE, TRAINING_QUEUE


def consumed_queues(sender: object) -> set[str]:
    consumer = getattr(sender, "task_consumer", None)
    queues = getattr(consumer, "queues", None) or []
    return {queue.name for queue in queues}


def quiet_progress_bars() -> None:
    """No download or "Loading weights" bars: in a worker's log each is a run of carriage-return frames
    that celery re-logs at WARNING (celery.redirected) every time a model loads."""
    import sys

    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers reads this when it is first imported
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


@worker_ready.connect(dispatch_uid="workers-start-services")
def start_worker_services(sender: object = None, **_: object) -> None:
    quiet_progress_bars()
    queues = consumed_queues(sender)
    if TRAINING_QUEUE in queues:
        from finetune.worker import on_training_worker_ready

        on_training_worker_ready()
    if INFERENCE_QUEUE in queues:
        from workers.serving.worker import engine_ready, on_inference_worker_ready

        engine_ready.connect(warm_up_knowledge, dispatch_uid="knowledge-warm-up")
        on_inference_worker_ready()


def warm_up_knowledge(sender, engine, **kwargs) -> None:
    """Load the indexes of knowledge bases that active deployments answer from, and their embedding
    models, before the first customer asks."""
    from knowledge.models import DeploymentKnowledge
    from knowledge.worker import preload

    ids = set(DeploymentKnowledge.objects.filter(deployment__status="active", knowledge_base__isnull=False)
              .exclude(policy="off").values_list("knowledge_base_id", flat=True))
    preload(sorted(ids), engine)
