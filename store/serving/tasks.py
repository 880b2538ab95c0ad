"""Celery tasks of the `inference` queue. The worker runs them in a thread pool: each task only
hands its request to the one engine and waits, so many requests are in flight and batched together."""

from celery import shared_task


@shared_task(name="store.serving.tasks.generate", ignore_result=True, acks_late=False)
def generate(payload: dict, reply_channel: str) -> None:
    from store.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_generation(payload, reply_channel)


@shared_task(name="store.serving.tasks.classify", ignore_result=True, acks_late=False)
def classify(payload: dict, reply_channel: str) -> None:
    from store.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_classification(payload, reply_channel)


@shared_task(name="store.serving.tasks.embed", ignore_result=True, acks_late=False)
def embed(payload: dict, reply_channel: str) -> None:
    from store.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_embedding(payload, reply_channel)


@shared_task(name="store.serving.tasks.engine_stats")
def engine_stats() -> dict:
    """The engine's counters and what it holds in memory (operators: `celery -A config call ...`)."""
    from store.serving.runtime import ServingRuntime

    engine = ServingRuntime.get().engine
    return {"counters": engine.counters(), "resident": engine.resident()}
