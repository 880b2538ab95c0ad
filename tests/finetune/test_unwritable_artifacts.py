"""An artifacts folder the training worker cannot write: the job fails and says where and why."""

import errno
from unittest import mock

from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import JobEvent, JobStatus
from finetune.runner import run_job
from tests.factories import sentiment_csv_bytes


def tiny_job(organization, base):
    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    return jobs.create_job(organization, base, dataset, enqueue=False, method="lora",
                           overrides={"epochs": 1, "batch_size": 8, "checkpoint_every_steps": 1})


def test_it_fails_the_job_when_the_checkpoint_folder_is_under_a_file(alice, tiny_encoder_base, settings, tmp_path):
    # Tests run as root, whom chmod does not stop; a path under a regular file stops everyone (ENOTDIR).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.ARTIFACTS_DIR = blocker / "artifacts"
    job = run_job(tiny_job(alice.organization, tiny_encoder_base).pk, "test-runner")
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith(f"Cannot write checkpoint to {blocker}/artifacts/jobs/")
    assert ": not a directory." in job.error_message and "GPT_STORE_ARTIFACTS_DIR" in job.error_message
    assert "Internal error" not in job.error_message and "Traceback" not in job.error_message
    failed = job.events.get(level=JobEvent.Level.ERROR)
    assert failed.message == f"Fine-tuning failed: {job.error_message}" and "traceback" not in failed.data


def test_it_fails_the_job_when_writing_a_checkpoint_is_denied(alice, tiny_encoder_base):
    job = tiny_job(alice.organization, tiny_encoder_base)
    folder = jobs.checkpoint_directory(job)
    denied = PermissionError(errno.EACCES, "Permission denied", str(folder / ".step-1.partial"))
    with mock.patch("workers.training.checkpoints.save_checkpoint", side_effect=denied):
        job = run_job(job.pk, "test-runner")
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith(f"Cannot write checkpoint to {folder}/.step-1.partial: permission denied.")


def test_it_fails_the_job_when_the_tuned_model_cannot_be_written(alice, tiny_encoder_base):
    job = tiny_job(alice.organization, tiny_encoder_base)
    full = OSError(errno.ENOSPC, "No space left on device", "/artifacts/models/x/adapter_model.safetensors")
    with mock.patch("workers.training.reporting.export_model", side_effect=full):
        job = run_job(job.pk, "test-runner")
    assert job.status == JobStatus.FAILED
    assert job.error_message.startswith(
        "Cannot write the tuned model to /artifacts/models/x/adapter_model.safetensors: no space left on device.")
