"""Celery tasks of knowledge, all on the `inference` queue (the engine lives there): thin wrappers."""

from celery import shared_task


@shared_task(name="knowledge.tasks.embed_version", ignore_result=True, acks_late=False)
def embed_version(version_id: int) -> str:
    from knowledge.worker import embed_version as embed

    return embed(version_id)


@shared_task(name="knowledge.tasks.requeue_stalled_versions", ignore_result=True)
def requeue_stalled_versions() -> list[int]:
    from knowledge.sources import requeue_stalled_versions as requeue

    return requeue()


@shared_task(name="knowledge.tasks.retrieve", ignore_result=True, acks_late=False)
def retrieve(payload: dict, reply_channel: str) -> None:
    from knowledge.worker import handle_retrieval

    handle_retrieval(payload, reply_channel)
