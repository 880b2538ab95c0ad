"""Fine-tuning through the real training worker (Celery over Redis), live progress, cancel."""

import time

import pytest

from core.bounds import EPOCHS
from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import FineTuneJob, JobEvent
from tests.factories import organization_with_key, sentiment_csv_bytes

pytestmark = pytest.mark.live


def wait_for(job_id: int, predicate, timeout: float = 240, stack=None) -> FineTuneJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = FineTuneJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.5)
    log = stack.log()[-3000:] if stack is not None else ""
    raise AssertionError(f"job {job_id} stuck in {job.status}: {list(job.events.values_list('message', flat=True))}"
                         f"\n{log}")


def test_a_job_trains_on_the_worker_and_its_model_answers_through_the_api(live, tiny_encoder_base):
    import json
    import urllib.request

    organization, _, key = organization_with_key()
    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    job = jobs.create_job(organization, tiny_encoder_base, dataset, suffix="moods",
                          overrides={"epochs": 3, "batch_size": 4})
    job = wait_for(job.pk, lambda j: j.status in ("succeeded", "failed", "cancelled"), stack=live)
    assert job.status == "succeeded", job.error_message
    assert job.worker.startswith("training@") or ":" in job.worker
    assert job.current_step == job.total_steps > 0
    metrics = job.events.filter(type=JobEvent.Type.METRICS).values_list("data", flat=True)
    assert any("train_loss" in data for data in metrics)
    tuned = job.tuned_model
    assert tuned.metrics["task"] == "sentiment" and "accuracy" in tuned.metrics["tuned"]
    request = urllib.request.Request(
        live.url + "/v1/sentiment", method="POST",
        data=json.dumps({"model": tuned.openai_id, "input": "Love these boots"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.loads(response.read())["data"][0]["label"] in tuned.labels


def test_cancel_stops_a_running_job_within_seconds(live, tiny_encoder_base):
    organization, _, _ = organization_with_key()
    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    job = jobs.create_job(organization, tiny_encoder_base, dataset, suffix="long",
                          # the most epochs core.bounds allows, one row a step: long enough to cancel midway
                          overrides={"epochs": EPOCHS.high, "batch_size": 1, "checkpoint_every_steps": 20})
    job = wait_for(job.pk, lambda j: j.status == "running" and j.current_step > 5, stack=live)
    asked = time.monotonic()
    jobs.request_cancel(job)
    job = wait_for(job.pk, lambda j: j.status != "running", timeout=30)
    assert job.status == "cancelled"
    assert time.monotonic() - asked < 10
    assert job.current_step < job.total_steps
