"""Fine-tuning jobs: check, create, claim, cancel, reap, record events. Web-safe (no torch).

The training itself runs in the `training` Celery worker (finetune/runner.py); every state change
here is a conditional UPDATE so several workers and the reaper never step on each other.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organization
from core.bounds import ACTIVE_JOBS_PER_ORGANIZATION, BATCH_SIZE, EPOCHS, SEED
from core.broadcast import notify
from core.queue import send_task
from finetune.models import ACTIVE_STATUSES, Dataset, FineTuneJob, JobEvent, JobStatus
from finetune.spec import Hyperparameters, check_combination, default_hyperparameters
from store.catalog import is_available
from store.models import FoundationModel, Method, Task, TunedModel

logger = logging.getLogger(__name__)


def job_directory(job: FineTuneJob) -> Path:
    """The training worker's own working folder for a job: its output before it is published to the artifact
    storage (store/artifacts.py), and its checkpoints.

    Checkpoints stay on the worker's disk (ARTIFACTS_DIR): one is written every few steps with the optimizer
    state (several times the trainable weights), and uploading each would make training wait on the network.
    A job resumed on the same machine (or on training workers sharing ARTIFACTS_DIR as a volume) continues
    from its last checkpoint; on another machine it starts again from step 0 and reaches the same weights."""
    return Path(settings.ARTIFACTS_DIR) / "jobs" / str(job.public_id)


def checkpoint_directory(job: FineTuneJob) -> Path:
    return job_directory(job) / "checkpoints"


def announce(job: FineTuneJob) -> None:
    """Ring the doorbell for the job page and the org's job list, once the change is committed."""
    job_id, org_id = job.pk, job.organization_id

    def ring() -> None:
        notify(f"finetune-job-{job_id}", {"type": "job.changed", "job": job_id})
        notify(f"finetune-org-{org_id}", {"type": "job.changed", "job": job_id})

    transaction.on_commit(ring)


def record_event(job: FineTuneJob, message: str, level: str = JobEvent.Level.INFO,
                 type: str = JobEvent.Type.MESSAGE, data: dict | None = None) -> JobEvent:
    event = JobEvent.objects.create(job=job, message=message, level=level, type=type, data=data or {})
    announce(job)
    return event


def hyperparameters_for(base: FoundationModel, task: str, method: str, rows: int,
                        overrides: dict | None = None) -> Hyperparameters:
    hyper = default_hyperparameters(task, method, base.architecture, rows, base.parameter_count)
    values = hyper.to_dict()
    for key, value in (overrides or {}).items():
        if key in values and value not in (None, ""):
            values[key] = value
    return Hyperparameters.from_dict(values)


def default_method(base: FoundationModel, task: str) -> str:
    # Small encoders tune fully in about a minute and classify (or embed) best that way; decoders use
    # LoRA so many tuned versions share one loaded base when served.
    if task == Task.EMBEDDING:
        return Method.FULL
    return Method.FULL if task == Task.SENTIMENT and not base.is_decoder else Method.LORA


def check_job_request(organization: Organization, base: FoundationModel, dataset: Dataset, task: str, method: str,
                      hyper: Hyperparameters, validation_dataset: Dataset | None = None) -> list[str]:
    errors = []
    if dataset.organization_id != organization.pk or (
        validation_dataset is not None and validation_dataset.organization_id != organization.pk
    ):
        errors.append("That dataset does not exist.")
    if not base.supports(task):
        errors.append(f"{base.display_name} cannot be tuned for {task} (it supports: {', '.join(base.tasks)}).")
    if dataset.task != task:
        errors.append(f"The dataset {dataset.name!r} is a {dataset.task} dataset, not {task}.")
    if validation_dataset is not None and validation_dataset.task != dataset.task:
        errors.append("The validation file must be of the same kind as the training file.")
    if method not in Method.values:
        errors.append(f"Unknown method {method!r}.")
    if not is_available(base):
        errors.append(f"The weights of {base.display_name} are not installed on this machine.")
    # The same bounds for the form, the API and the CLI: a billion epochs plans a job that never ends.
    errors.extend(bound.message() for bound, value in ((EPOCHS, hyper.epochs), (BATCH_SIZE, hyper.batch_size),
                                                       (SEED, hyper.seed)) if not bound.contains(value))
    if not errors:
        errors.extend(check_combination(task, method, base.architecture, hyper))
    return errors


# Continued training loads the parent's adapter (or full weights) as they are: the method stays, and so do the
# hyperparameters that give the adapter its shape. AdaLoRA is not continued: its ranks were pruned to a pattern
# peft cannot grow or re-allocate from (a new AdaLoRA run starts from the base).
CONTINUABLE_METHODS = (Method.LORA, Method.IA3, Method.PREFIX_TUNING, Method.FULL)
ADAPTER_SHAPE: dict[str, tuple[str, ...]] = {
    Method.LORA: ("lora_r", "lora_alpha", "target_modules"), Method.IA3: ("target_modules",),
    Method.PREFIX_TUNING: ("num_virtual_tokens",), Method.FULL: ()}


def check_continuation(organization: Organization, parent: TunedModel, dataset: Dataset, task: str,
                       method: str, overrides: dict) -> list[str]:
    """Why a job cannot continue training `parent` (its weights are the starting point); [] when it can."""
    name = parent.openai_id
    if parent.organization_id != organization.pk:
        return [f"The model {name!r} does not exist."]
    if parent.task != task:
        return [f"{name} is a {parent.task} model: continue it with a {parent.task} file, not a {task} one."]
    if method != parent.method:
        return [f"{name} was tuned with {Method(parent.method).label}; continued training keeps the method, so "
                f"it cannot continue as {Method(method).label if method in Method.values else method!r}. "
                f"Use {parent.method}, or fine-tune the base model {parent.base.slug} with {method}."]
    if method not in CONTINUABLE_METHODS:
        return [f"{name} is an {Method(method).label} model, which cannot be trained further (its ranks were "
                f"pruned); fine-tune the base model {parent.base.slug} again instead."]
    errors = []
    if task == Task.SENTIMENT and list(dataset.labels) != list(parent.labels):
        errors.append(f"{name} classifies {', '.join(parent.labels)}; the training file's labels "
                      f"({', '.join(dataset.labels)}) must be the same.")
    for key in ADAPTER_SHAPE[Method(method)]:
        inherited = parent.hyperparameters.get(key)
        if key in overrides and overrides[key] != inherited:
            errors.append(f"{key} is {inherited!r} in {name}'s adapter; continued training cannot change it.")
    return errors


class JobRequestError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class TooManyActiveJobs(JobRequestError):
    """The organization has ACTIVE_JOBS_PER_ORGANIZATION jobs waiting or running: refused, not queued forever."""


def check_active_job_cap(organization: Organization) -> None:
    """Call inside the transaction that creates the job: it locks the organization's row, so two requests
    at once cannot both take the last place (on PostgreSQL; SQLite serialises writers anyway)."""
    Organization.objects.select_for_update().only("pk").get(pk=organization.pk)
    active = FineTuneJob.objects.filter(organization=organization, status__in=ACTIVE_STATUSES).count()
    if active >= ACTIVE_JOBS_PER_ORGANIZATION:
        raise TooManyActiveJobs([
            f"Your organization already has {active} fine-tuning jobs queued or running (at most "
            f"{ACTIVE_JOBS_PER_ORGANIZATION} at once). Wait for one to finish, or cancel one, then try again."])


def unique_suffix(text: str) -> str:
    return slugify(text)[:40].strip("-") or "tuned"


def create_job(organization: Organization, base: FoundationModel, dataset: Dataset, task: str | None = None,
               method: str | None = None, overrides: dict | None = None, suffix: str = "", user=None,
               validation_dataset: Dataset | None = None, enqueue: bool = True,
               parent: TunedModel | None = None) -> FineTuneJob:
    """Check everything, create the job as `validating_files`, then queue it (on commit).

    With `parent` (continued training) the job tunes the parent's foundation model starting from the parent's
    weights, with the parent's method unless another is asked for (which is refused)."""
    task = task or dataset.task
    errors = []
    if parent is not None:
        base, method = parent.base, method or parent.method
        errors = check_continuation(organization, parent, dataset, task, method, overrides or {})
        shape = {key: parent.hyperparameters[key] for key in ADAPTER_SHAPE.get(method, ())
                 if key in parent.hyperparameters}
        overrides = {**(overrides or {}), **shape}
    method = method or default_method(base, task)
    hyper = hyperparameters_for(base, task, method, dataset.row_count, overrides)
    errors = errors or check_job_request(organization, base, dataset, task, method, hyper, validation_dataset)
    if errors:
        raise JobRequestError(errors)
    with transaction.atomic():
        check_active_job_cap(organization)
        job = FineTuneJob.objects.create(
            organization=organization, base_model=base, dataset=dataset, validation_dataset=validation_dataset,
            task=task, method=method, hyperparameters=hyper.to_dict(),
            suffix=unique_suffix(suffix or dataset.name), created_by=user, status=JobStatus.VALIDATING_FILES,
            parent_model=parent, parent_model_name=parent.openai_id if parent else "",
        )
        record_event(job, f"Created fine-tuning job {job.openai_id}: {base.display_name}, {task}, {method}"
                          f"{f', continuing from {parent.openai_id}' if parent else ''}.")
        record_event(job, f"Validated {dataset.name}: {dataset.row_count} rows "
                          f"({', '.join(f'{k} {v}' for k, v in dataset.stats.get('split_sizes', {}).items())}).")
        FineTuneJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
        job.status = JobStatus.QUEUED
        record_event(job, "Job queued; it starts when a training worker is free.")
        if enqueue:
            enqueue_job(job)
    return job


def enqueue_job(job: FineTuneJob, countdown: float = 0) -> None:
    job_id = job.pk
    # By name: finetune.tasks' bodies import worker code (core/queue.py).
    transaction.on_commit(lambda: send_task("finetune.tasks.run_finetune_job", job_id, countdown=countdown))


def claim_job(job_id: int, worker: str) -> bool:
    """Take a queued job; exactly one caller wins, however many workers race for it."""
    now = timezone.now()
    claimed = FineTuneJob.objects.filter(pk=job_id, status=JobStatus.QUEUED, cancel_requested=False).update(
        status=JobStatus.RUNNING, worker=worker, heartbeat_at=now, started_at=now, attempts=F("attempts") + 1,
        error_message="",
    )
    return claimed == 1


def heartbeat(job_id: int, worker: str) -> bool:
    """Refresh the heartbeat; False if the job is no longer ours (reaped, cancelled, finished)."""
    return FineTuneJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=worker).update(
        heartbeat_at=timezone.now()) == 1


def request_cancel(job: FineTuneJob) -> FineTuneJob:
    """A queued job is cancelled at once; a running one stops at its next step (the worker sees the flag)."""
    with transaction.atomic():
        now = timezone.now()
        if FineTuneJob.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.VALIDATING_FILES]).update(
                status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now):
            record_event(job, "Job cancelled before it started.")
        elif FineTuneJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True):
            record_event(job, "Cancellation requested; the worker stops at its next step and keeps its checkpoints.")
    job.refresh_from_db()
    return job


def finish_job(job_id: int, worker: str, status: str, **fields) -> bool:
    """Final transition from running, only by the worker that owns the job."""
    updated = FineTuneJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=worker).update(
        status=status, finished_at=timezone.now(), **fields)
    return updated == 1


def requeue_job(job_id: int, worker: str, reason: str) -> bool:
    """Give a running job back to the queue (worker shutting down); it resumes from its checkpoint."""
    updated = FineTuneJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, worker=worker).update(
        status=JobStatus.QUEUED, worker="")
    if updated:
        job = FineTuneJob.objects.get(pk=job_id)
        record_event(job, reason, level=JobEvent.Level.WARNING)
        enqueue_job(job, countdown=1)
    return updated == 1


def reap_stale_jobs(stale_after: float | None = None) -> list[int]:
    """Running jobs whose worker stopped heartbeating (killed, machine lost) are queued again and
    resume from their last checkpoint on the next worker; a cancelled one just ends."""
    stale_after = settings.STALE_JOB_SECONDS if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    requeued = []
    for job in FineTuneJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff):
        with transaction.atomic():
            if job.cancel_requested:
                if FineTuneJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
                        status=JobStatus.CANCELLED, finished_at=timezone.now()):
                    record_event(job, "The worker stopped responding; the job was being cancelled, so it ends here.")
                continue
            if FineTuneJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
                    status=JobStatus.QUEUED, worker=""):
                record_event(job, f"Worker {job.worker} stopped responding (no heartbeat for {int(stale_after)} s); "
                                  "the job was queued again and resumes from its last checkpoint.",
                             level=JobEvent.Level.WARNING)
                enqueue_job(job)
                requeued.append(job.pk)
    if requeued:
        logger.warning("requeued stale fine-tuning jobs %s", requeued)
    return requeued


def delete_job(job: FineTuneJob) -> None:
    """Delete a finished job with its checkpoints (its tuned model stays; delete that separately)."""
    if job.status in ACTIVE_STATUSES:
        raise JobRequestError(["Cancel the job before deleting it."])
    directory = job_directory(job)
    with transaction.atomic():
        job.delete()
        transaction.on_commit(lambda: shutil.rmtree(directory, ignore_errors=True))
