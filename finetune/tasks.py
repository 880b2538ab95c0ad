"""Celery tasks of the `training` queue: thin wrappers that take ids and call plain functions.

Every task says whether a lost or failed run is retried, and by what (tests/core/test_task_retries.py):
acks_late + reject_on_worker_lost make the broker deliver a task again when its worker dies; only
tasks whose body is idempotent (a conditional-UPDATE claim) may have that. Retries on a database
blip are for short tasks only.
"""

from __future__ import annotations

import socket
import threading

from celery import shared_task
from django.db import InterfaceError, OperationalError

# The database being unreachable for a few seconds (restart, failover) is worth waiting out.
DATABASE_BLIPS = (OperationalError, InterfaceError)


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.get_ident()}"


# Not redelivered by the broker: a run lasts hours (longer than Redis's visibility timeout would allow).
# Its retry is the reaper: a job whose worker stops heartbeating is queued again and resumes from its
# last checkpoint. run_job is idempotent (it claims the job with a conditional UPDATE).
@shared_task(name="finetune.tasks.run_finetune_job", acks_late=False, reject_on_worker_lost=False, max_retries=0,
             ignore_result=True)
def run_finetune_job(job_id: int) -> None:
    from finetune.runner import run_job

    run_job(job_id, worker_name())


# Periodic: the next beat tick is its retry.
@shared_task(name="finetune.tasks.reap_stale_jobs", acks_late=False, reject_on_worker_lost=False, max_retries=0,
             ignore_result=True)
def reap_stale_jobs() -> list[int]:
    from finetune.jobs import reap_stale_jobs as reap
    from store.merging import reap_stalled_merges

    requeued = reap()
    reap_stalled_merges()
    return requeued


# Token statistics are a few seconds of tokenizing: config/celery.py routes them to the inference
# worker's thread pool so they never wait behind an hour-long training run on the one training slot.
# Idempotent (recomputes and overwrites the same row), short: redelivered and retried freely.
@shared_task(name="finetune.tasks.compute_token_stats", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=DATABASE_BLIPS, max_retries=3, retry_backoff=True, ignore_result=True)
def compute_token_stats(dataset_id: int, base_id: int) -> None:
    from finetune.token_stats import compute_and_store

    compute_and_store(dataset_id, base_id)


# Idempotent (claimed with a conditional UPDATE; the staging folder is rebuilt each time): redelivered
# when its worker dies before claiming, retried on a database blip. A worker that dies mid-merge leaves
# it `running` with a stale heartbeat, and the reaper queues it again (store/merging.py).
@shared_task(name="finetune.tasks.merge_tuned_model", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=DATABASE_BLIPS, max_retries=3, retry_backoff=True, ignore_result=True)
def merge_tuned_model(tuned_id: int) -> None:
    from finetune.exports import merge_for_download

    merge_for_download(tuned_id)
