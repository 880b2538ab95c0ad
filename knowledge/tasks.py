"""Celery tasks of knowledge, all on the `inference` queue (the engine lives there): thin wrappers."""

from celery import shared_task


# Not redelivered: requeue_stalled_versions (beat) queues a version again when its embedding stalls.
@shared_task(name="knowledge.tasks.embed_version", ignore_result=True, acks_late=False, reject_on_worker_lost=False,
             max_retries=0)
def embed_version(version_id: int) -> str:
    from knowledge.worker import embed_version as embed

    return embed(version_id)


# Periodic: the next beat tick is its retry.
@shared_task(name="knowledge.tasks.requeue_stalled_versions", ignore_result=True, acks_late=False,
             reject_on_worker_lost=False, max_retries=0)
def requeue_stalled_versions() -> list[int]:
    from knowledge.sources import requeue_stalled_versions as requeue

    return requeue()


# Not retried: the caller is waiting on its reply channel and gives up on its own timeout.
@shared_task(name="knowledge.tasks.retrieve", ignore_result=True, acks_late=False, reject_on_worker_lost=False,
             max_retries=0)
def retrieve(payload: dict, reply_channel: str) -> None:
    from knowledge.worker import handle_retrieval

    handle_retrieval(payload, reply_channel)
