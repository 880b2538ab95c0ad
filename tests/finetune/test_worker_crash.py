"""A training worker killed with SIGKILL, or stopped with SIGTERM: the job resumes on the next worker
from its last checkpoint and runs exactly the steps that were left. Real Celery workers, real Redis."""

import os
import signal
import subprocess
import sys
import time

import pytest

from core.embedded_redis import EmbeddedRedis
from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import FineTuneJob, JobCheckpoint
from tests.conftest import REPO, celery_broker, session_database_url, stack_environment
from tests.factories import organization_with_key, sentiment_csv_bytes

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis.sock")
    server.start()
    with celery_broker(server.url):
        yield server
    server.stop()


def start_worker(name: str, broker: EmbeddedRedis, data_dir) -> subprocess.Popen:
    env = stack_environment(data_dir, session_database_url()) | {"REDIS_URL": broker.url}
    log = open(data_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "training", "-P",
                             "threads", "-c", "1", "-n", f"{name}@%h", "--without-gossip", "--without-mingle"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(job_id: int, predicate, timeout: float = 180) -> FineTuneJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = FineTuneJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} stuck in {job.status}: {list(job.events.values_list('message', flat=True))}")


def long_job(tiny_encoder_base) -> FineTuneJob:
    organization, _, _ = organization_with_key()
    dataset = create_dataset(organization, sentiment_csv_bytes(), "moods.csv").dataset
    return jobs.create_job(organization, tiny_encoder_base, dataset, suffix="crash",
                           overrides={"epochs": 30, "batch_size": 2, "checkpoint_every_steps": 10, "seed": 5})


def finished_attempt(job: FineTuneJob) -> dict:
    return job.events.filter(message__startswith="Ran ").order_by("-pk").first().data


def test_a_job_survives_kill_9_of_its_worker(broker, tiny_encoder_base, tmp_path):
    first = start_worker("crash-a", broker, tmp_path)
    second = None
    try:
        job = long_job(tiny_encoder_base)
        job = wait_for(job.pk, lambda j: j.status == "running" and JobCheckpoint.objects.filter(
            job=j, step__gte=20).exists())
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        checkpoint = JobCheckpoint.objects.filter(job=job).order_by("-step").first().step
        time.sleep(1.5)
        assert FineTuneJob.objects.get(pk=job.pk).status == "running"  # nobody noticed yet
        assert jobs.reap_stale_jobs(stale_after=1) == [job.pk]
        second = start_worker("crash-b", broker, tmp_path)
        job = wait_for(job.pk, lambda j: j.status in ("succeeded", "failed"))
        assert job.status == "succeeded", job.error_message
        assert job.attempts == 2
        attempt = finished_attempt(job)
        assert attempt["resumed_from"] >= checkpoint  # the newest complete checkpoint
        assert attempt["steps_run"] == job.total_steps - attempt["resumed_from"]
        assert attempt["final_step"] == job.total_steps == job.current_step
        messages = list(job.events.values_list("message", flat=True))
        assert any("stopped responding" in m for m in messages)
        assert any(m.startswith("Resuming from checkpoint") for m in messages)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()


def test_sigterm_checkpoints_and_the_next_worker_finishes(broker, tiny_encoder_base, tmp_path):
    first = start_worker("term-a", broker, tmp_path)
    second = None
    try:
        job = long_job(tiny_encoder_base)
        job = wait_for(job.pk, lambda j: j.status == "running" and j.current_step >= 5)
        first.send_signal(signal.SIGTERM)
        job = wait_for(job.pk, lambda j: j.status == "queued", timeout=60)
        assert first.wait(60) is not None
        interrupted_at = JobCheckpoint.objects.filter(job=job).order_by("-step").first().step
        assert interrupted_at >= 5
        second = start_worker("term-b", broker, tmp_path)
        job = wait_for(job.pk, lambda j: j.status in ("succeeded", "failed"))
        assert job.status == "succeeded", job.error_message
        assert finished_attempt(job)["resumed_from"] == interrupted_at
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait()
