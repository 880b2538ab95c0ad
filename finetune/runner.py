"""Run one fine-tuning job in a worker: claim it, train with live progress, register the result.

Worker-only (imports the training core, hence torch). Called by the Celery task and by
`manage.py finetune`, so both take exactly the same path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.worker_lifecycle import shutdown_requested
from finetune import jobs
from finetune.datasets import load_rows
from finetune.model_card import build_card
from finetune.models import FineTuneJob, JobCheckpoint, JobEvent, JobStatus
from store.artifacts import ArtifactMissing, local_folder, tuned_name
from store.tuned import register_tuned_model

logger = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 1.0
CANCEL_POLL_SECONDS = 1.0


class _Heartbeat(threading.Thread):
    """Keeps the job's heartbeat fresh even while one training step takes longer than the stale limit."""

    def __init__(self, job_id: int, worker: str) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id, self.worker = job_id, worker
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.FINETUNE_HEARTBEAT_SECONDS):
                try:
                    if not jobs.heartbeat(self.job_id, self.worker):
                        self.lost.set()  # reaped or finished elsewhere: this worker must stop writing
                        return
                except Exception:
                    logger.exception("heartbeat failed for job %s", self.job_id)
        finally:
            connections.close_all()  # this thread's own connection


class JobCallbacks:
    """The training loop's callbacks: progress into the database, events, cancel and shutdown."""

    def __init__(self, job: FineTuneJob, worker: str, heartbeat: _Heartbeat,
                 echo: Callable[[str, object], None] | None = None) -> None:
        self.job, self.worker, self.heartbeat, self.echo = job, worker, heartbeat, echo
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._cancel = False

    def _metrics_every(self, total_steps: int) -> int:
        return max(1, math.ceil(total_steps / 400))  # at most ~400 points on the loss curve

    def on_progress(self, progress) -> None:
        now = time.monotonic()
        if progress.train_loss is not None and (progress.step % self._metrics_every(progress.total_steps) == 0
                                                or progress.step == progress.total_steps):
            JobEvent.objects.create(
                job=self.job, type=JobEvent.Type.METRICS, message=f"Step {progress.step}/{progress.total_steps}: "
                f"training loss={progress.train_loss:.4f}",
                data={"step": progress.step, "train_loss": progress.train_loss, "epoch": progress.epoch,
                      "learning_rate": progress.learning_rate, "tokens_per_second": progress.tokens_per_second})
        if now - self._last_write >= PROGRESS_WRITE_SECONDS or progress.step == progress.total_steps:
            self._last_write = now
            FineTuneJob.objects.filter(pk=self.job.pk, status=JobStatus.RUNNING, worker=self.worker).update(
                current_step=progress.step, total_steps=progress.total_steps, epoch=progress.epoch,
                train_loss=progress.train_loss, tokens_per_second=progress.tokens_per_second,
                elapsed_seconds=progress.elapsed_seconds, eta_seconds=progress.eta_seconds,
                trained_tokens=progress.real_tokens_seen, heartbeat_at=timezone.now())
            jobs.announce(self.job)
        if self.echo:
            self.echo("progress", progress)

    def on_event(self, level: str, message: str, data: dict | None = None) -> None:
        jobs.record_event(self.job, message, level={"warning": "warn"}.get(level, level), data=data)
        if self.echo:
            self.echo("event", message)

    def on_evaluation(self, step: int, metrics: dict) -> None:
        loss = metrics.get("validation_loss")
        jobs.record_event(self.job, f"Step {step}: validation loss={loss:.4f}" if loss is not None else
                          f"Step {step}: evaluation", type=JobEvent.Type.METRICS, data={"step": step, **metrics})
        if loss is not None:
            FineTuneJob.objects.filter(pk=self.job.pk).update(validation_loss=loss)
        if self.echo:
            self.echo("evaluation", (step, metrics))

    def on_checkpoint(self, step: int, path: Path) -> None:
        JobCheckpoint.objects.update_or_create(job=self.job, step=step, defaults={"path": str(path)})
        # Checkpoints pruned on disk are pruned here too, so the API never lists a missing one.
        for checkpoint in JobCheckpoint.objects.filter(job=self.job).exclude(step=step):
            if not Path(checkpoint.path).exists():
                checkpoint.delete()
        jobs.record_event(self.job, f"Saved checkpoint at step {step}.", data={"step": step})

    def should_stop(self) -> str | None:
        if self.heartbeat.lost.is_set():
            return "cancel"  # someone else owns the job now; stop without touching its files
        if shutdown_requested.is_set():
            return "shutdown"
        now = time.monotonic()
        if not self._cancel and now - self._last_cancel_check >= CANCEL_POLL_SECONDS:
            self._last_cancel_check = now
            self._cancel = FineTuneJob.objects.filter(pk=self.job.pk, cancel_requested=True).exists()
        return "cancel" if self._cancel else None


def build_spec(job: FineTuneJob):
    from finetune.spec import Hyperparameters, TrainingSpec
    from workers.models.loading import model_folder, pick_device

    rows = load_rows(job.dataset)
    pick = {part: [rows[i] for i in indices] for part, indices in job.dataset.splits.items()}
    validation = load_rows(job.validation_dataset) if job.validation_dataset else pick["validation"]
    directory = jobs.job_directory(job)
    labels = list(job.dataset.labels) if job.task == "sentiment" else []
    return TrainingSpec(
        task=job.task, method=job.method, base_folder=model_folder(job.base_model),
        architecture=job.base_model.architecture, hyper=Hyperparameters.from_dict(job.hyperparameters),
        train_rows=pick["train"], validation_rows=validation, test_rows=pick["test"],
        labels=labels, output_dir=directory / "output", checkpoint_dir=jobs.checkpoint_directory(job),
        device=pick_device(settings.TRAINING_DEVICE), init_from=parent_folder(job),
    )


def parent_folder(job: FineTuneJob) -> Path | None:
    """The weights a continued job starts from, fetched into this worker's cache when the storage is remote."""
    from workers.training.loop import TrainingError

    if not job.parent_model_name:
        return None
    if job.parent_model is None:
        raise TrainingError(f"The tuned model {job.parent_model_name} this job continues from was deleted; "
                            "start a new job from its base model or another tuned model.")
    try:
        return local_folder(tuned_name(job.parent_model))
    except ArtifactMissing as error:
        logger.error("job %s cannot start from %s: %s", job.pk, job.parent_model_name, error)
        raise TrainingError(f"The weights of {job.parent_model_name}, which this job continues from, are missing "
                            "from the artifact storage; the worker log says where they were looked for.") from None


def trained_system_prompt(rows: list[dict]) -> str:
    """The system prompt most training conversations start with: the tuned model's default."""
    prompts = Counter(row["messages"][0]["content"] for row in rows if row["messages"][0]["role"] == "system")
    return prompts.most_common(1)[0][0] if prompts else ""


def _register_result(job: FineTuneJob, result, spec) -> None:
    card = build_card(job, result.metrics, result.final_step)
    tuned = register_tuned_model(
        job.organization, job.base_model, job.task, job.method, job.suffix, Path(result.adapter_dir),
        labels=spec.labels, hyperparameters=job.hyperparameters,
        data_stats={"dataset": job.dataset.name, "rows": job.dataset.row_count, **job.dataset.stats},
        metrics=result.metrics, card_markdown=card,
        default_system_prompt=trained_system_prompt(spec.train_rows) if job.task == "dialogue" else "",
    )
    if jobs.finish_job(job.pk, job.worker, JobStatus.SUCCEEDED, tuned_model=tuned, metrics=result.metrics,
                       current_step=result.final_step, total_steps=result.total_steps, eta_seconds=0):
        jobs.record_event(job, f"Fine-tuning succeeded: {tuned.slug} ({tuned.openai_id}) is ready to deploy.",
                          data={"tuned_model": tuned.slug, "fine_tuned_model": tuned.openai_id})


def run_job(job_id: int, worker: str, echo: Callable[[str, object], None] | None = None) -> FineTuneJob:
    """Claim and run a job to an end state (or back to the queue on shutdown). Never leaves it `running`."""
    from workers.training.loop import TrainingError, latest_checkpoint, run_training

    if not jobs.claim_job(job_id, worker):
        return FineTuneJob.objects.get(pk=job_id)
    job = FineTuneJob.objects.select_related("base_model", "dataset", "organization", "parent_model__base",
                                             "parent_model__organization").get(pk=job_id)
    heartbeat = _Heartbeat(job_id, worker)
    heartbeat.start()
    try:
        spec = build_spec(job)
        resume = latest_checkpoint(spec.checkpoint_dir)
        jobs.record_event(job, f"Resuming from checkpoint {resume.name} (attempt {job.attempts})." if resume else
                          f"Training started on {spec.device} (attempt {job.attempts}).")
        result = run_training(spec, JobCallbacks(job, worker, heartbeat, echo), resume_from=resume)
        resumed_from = int(resume.name.rsplit("-", 1)[-1]) if resume else 0
        jobs.record_event(job, f"Ran {result.steps_run} optimizer steps in this attempt "
                               f"(steps {resumed_from + 1}–{result.final_step} of {result.total_steps}).",
                          data={"steps_run": result.steps_run, "resumed_from": resumed_from,
                                "final_step": result.final_step, "total_steps": result.total_steps})
        if result.status in ("completed", "early_stopped"):
            if result.status == "early_stopped":
                jobs.record_event(job, "Stopped early: the validation loss stopped improving.")
            _register_result(job, result, spec)
        elif result.status == "cancelled":
            if jobs.finish_job(job_id, worker, JobStatus.CANCELLED):
                jobs.record_event(job, f"Job cancelled at step {result.final_step}; its checkpoints are kept.")
        elif result.status == "interrupted":
            jobs.requeue_job(job_id, worker, f"The worker is shutting down: checkpoint saved at step "
                                             f"{result.final_step}; the job will resume on the next worker.")
    except TrainingError as error:
        if jobs.finish_job(job_id, worker, JobStatus.FAILED, error_message=str(error)):
            jobs.record_event(job, f"Fine-tuning failed: {error}", level=JobEvent.Level.ERROR)
    except Exception as error:
        logger.exception("fine-tuning job %s crashed", job_id)
        message = f"Internal error ({error.__class__.__name__}: {error}). The traceback is in the worker log."
        if jobs.finish_job(job_id, worker, JobStatus.FAILED, error_message=message):
            jobs.record_event(job, message, level=JobEvent.Level.ERROR,
                              data={"traceback": traceback.format_exc(limit=5)})
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=30)
    return FineTuneJob.objects.get(pk=job_id)
