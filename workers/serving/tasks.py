"""Celery tasks of the `inference` queue. The worker runs them in a thread pool: each task only
hands its request to the one engine and waits, so many requests are in flight and batched together."""

from celery import shared_task


# Not retried: the caller is waiting on its reply channel; a second run would stream a duplicate or
# partial reply. A lost worker is noticed by the caller (an error event), not by redelivery.
@shared_task(name="store.serving.tasks.generate", ignore_result=True, acks_late=False, reject_on_worker_lost=False,
             max_retries=0)
def generate(payload: dict, reply_channel: str) -> None:
    from workers.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_generation(payload, reply_channel)


# Not retried, like generate: the caller waits for the one reply.
@shared_task(name="store.serving.tasks.classify", ignore_result=True, acks_late=False, reject_on_worker_lost=False,
             max_retries=0)
def classify(payload: dict, reply_channel: str) -> None:
    from workers.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_classification(payload, reply_channel)


# Not retried, like generate: the caller waits for the one reply.
@shared_task(name="store.serving.tasks.embed", ignore_result=True, acks_late=False, reject_on_worker_lost=False,
             max_retries=0)
def embed(payload: dict, reply_channel: str) -> None:
    from workers.serving.runtime import ServingRuntime

    ServingRuntime.get().handle_embedding(payload, reply_channel)


# Not retried: an operator asks again.
@shared_task(name="store.serving.tasks.engine_stats", acks_late=False, reject_on_worker_lost=False, max_retries=0)
def engine_stats() -> dict:
    """The engine's counters and what it holds in memory (operators: `celery -A config call ...`)."""
    from workers.serving.runtime import ServingRuntime

    engine = ServingRuntime.get().engine
    return {"counters": engine.counters(), "resident": engine.resident()}
