"""Celery tasks of the `training` queue: thin wrappers that take ids and call plain functions."""

from __future__ import annotations

import socket
import threading

from celery import shared_task


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.get_ident()}"


@shared_task(name="finetune.tasks.run_finetune_job", acks_late=False, ignore_result=True)
def run_finetune_job(job_id: int) -> None:
    # Idempotent: run_job claims the job with a conditional UPDATE and returns if someone else has it.
    from finetune.runner import run_job

    run_job(job_id, worker_name())


@shared_task(name="finetune.tasks.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs() -> list[int]:
    from finetune.jobs import reap_stale_jobs as reap

    return reap()


# Token statistics are a few seconds of tokenizing: config/celery.py routes them to the inference
# worker's thread pool so they never wait behind an hour-long training run on the one training slot.
@shared_task(name="finetune.tasks.compute_token_stats", ignore_result=True)
def compute_token_stats(dataset_id: int, base_id: int) -> None:
    from finetune.token_stats import compute_and_store

    compute_and_store(dataset_id, base_id)


@shared_task(name="finetune.tasks.merge_tuned_model", ignore_result=True)
def merge_tuned_model(tuned_id: int) -> None:
    from finetune.exports import merge_for_download

    merge_for_download(tuned_id)
