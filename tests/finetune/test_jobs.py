"""The job lifecycle: creation checks, claiming, cancelling, reaping and finishing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from finetune import jobs
from finetune.models import FineTuneJob, JobStatus

pytestmark = pytest.mark.postgres


@pytest.fixture
def queued_job(alice, sentiment_dataset, tiny_encoder_base):
    return jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")


def test_it_creates_a_queued_job_with_defaults_and_events(queued_job):
    assert queued_job.status == JobStatus.QUEUED
    assert queued_job.method == "full"  # small encoder + sentiment
    assert queued_job.hyperparameters["epochs"] >= 1
    messages = list(queued_job.events.values_list("message", flat=True))
    assert messages[0].startswith("Created fine-tuning job ftjob-")
    assert "Job queued" in messages[-1]


def test_it_applies_overrides(alice, sentiment_dataset, tiny_encoder_base):
    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, method="lora",
                          overrides={"epochs": 7, "lora_r": 4})
    assert (job.hyperparameters["epochs"], job.hyperparameters["lora_r"], job.method) == (7, 4, "lora")


def test_it_refuses_dialogue_on_an_encoder(alice, sentiment_dataset, tiny_encoder_base):
    with pytest.raises(jobs.JobRequestError, match="cannot be tuned for dialogue"):
        jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, task="dialogue")
    assert not FineTuneJob.objects.exists()


def test_it_refuses_invalid_hyperparameters(alice, sentiment_dataset, tiny_encoder_base):
    with pytest.raises(jobs.JobRequestError):
        jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, method="lora",
                        overrides={"lora_r": 0})


def test_it_refuses_another_organizations_dataset(charlie, sentiment_dataset, tiny_encoder_base):
    with pytest.raises(jobs.JobRequestError, match="does not exist"):
        jobs.create_job(charlie.organization, tiny_encoder_base, sentiment_dataset)


def test_only_one_worker_claims_a_job(queued_job):
    assert jobs.claim_job(queued_job.pk, "worker-a") is True
    assert jobs.claim_job(queued_job.pk, "worker-b") is False
    queued_job.refresh_from_db()
    assert (queued_job.status, queued_job.worker, queued_job.attempts) == ("running", "worker-a", 1)


def test_it_cancels_a_queued_job_at_once(queued_job):
    job = jobs.request_cancel(queued_job)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert jobs.claim_job(job.pk, "worker-a") is False


def test_it_flags_a_running_job_for_cancellation(queued_job):
    jobs.claim_job(queued_job.pk, "worker-a")
    job = jobs.request_cancel(queued_job)
    assert job.status == JobStatus.RUNNING and job.cancel_requested


def test_only_the_owning_worker_finishes_a_job(queued_job):
    jobs.claim_job(queued_job.pk, "worker-a")
    assert jobs.finish_job(queued_job.pk, "worker-b", JobStatus.SUCCEEDED) is False
    assert jobs.finish_job(queued_job.pk, "worker-a", JobStatus.FAILED, error_message="boom") is True
    queued_job.refresh_from_db()
    assert (queued_job.status, queued_job.error_message) == ("failed", "boom")


def test_the_reaper_requeues_a_job_whose_worker_died(queued_job, django_capture_on_commit_callbacks):
    jobs.claim_job(queued_job.pk, "worker-a")
    FineTuneJob.objects.filter(pk=queued_job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks() as callbacks:
        assert jobs.reap_stale_jobs(stale_after=60) == [queued_job.pk]
    queued_job.refresh_from_db()
    assert queued_job.status == JobStatus.QUEUED and queued_job.worker == ""
    assert "stopped responding" in queued_job.events.last().message
    assert callbacks, "the job is sent to the queue again once the transaction commits"
    assert jobs.claim_job(queued_job.pk, "worker-b") is True


def test_the_reaper_leaves_healthy_jobs_alone(queued_job):
    jobs.claim_job(queued_job.pk, "worker-a")
    assert jobs.reap_stale_jobs(stale_after=60) == []
    queued_job.refresh_from_db()
    assert queued_job.status == JobStatus.RUNNING


def test_the_reaper_ends_a_stale_job_that_was_being_cancelled(queued_job):
    jobs.claim_job(queued_job.pk, "worker-a")
    FineTuneJob.objects.filter(pk=queued_job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10),
                                                        cancel_requested=True)
    assert jobs.reap_stale_jobs(stale_after=60) == []
    queued_job.refresh_from_db()
    assert queued_job.status == JobStatus.CANCELLED


def test_a_lost_heartbeat_is_reported_to_the_old_worker(queued_job):
    jobs.claim_job(queued_job.pk, "worker-a")
    FineTuneJob.objects.filter(pk=queued_job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    jobs.reap_stale_jobs(stale_after=60)
    assert jobs.heartbeat(queued_job.pk, "worker-a") is False


def test_it_refuses_to_delete_an_active_job(queued_job):
    with pytest.raises(jobs.JobRequestError, match="Cancel the job"):
        jobs.delete_job(queued_job)
    jobs.request_cancel(queued_job)
    jobs.delete_job(queued_job)
    assert not FineTuneJob.objects.filter(pk=queued_job.pk).exists()
