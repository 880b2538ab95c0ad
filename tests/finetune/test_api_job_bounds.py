"""Fine-tuning jobs through /v1: unknown hyperparameters are refused by name, numbers are bounded, and an
organization has at most ACTIVE_JOBS_PER_ORGANIZATION jobs waiting or running (the web form included)."""

import json

import pytest
from django.urls import reverse

from core.bounds import ACTIVE_JOBS_PER_ORGANIZATION
from finetune import jobs
from finetune.models import FineTuneJob
from store.api_keys import create_api_key
from tests.factories import bearer


def create_job(client, key, **body):
    return client.post("/v1/fine_tuning/jobs", data=json.dumps(body), content_type="application/json",
                       **bearer(key))


def refused(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert not FineTuneJob.objects.exists()
    return error


@pytest.fixture
def key(alice):
    return create_api_key(alice.organization, "api")[1]


@pytest.fixture
def job_body(sentiment_dataset, tiny_encoder_base):
    return {"model": tiny_encoder_base.slug, "training_file": sentiment_dataset.openai_id}


@pytest.mark.parametrize(("hyperparameters", "param"), [
    ({"hyperparameters": {"n_epochs": 2, "warmup_steps": 10}}, "hyperparameters.warmup_steps"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}},
     "method.supervised.hyperparameters.beta"),
    ({"tuning": {"hyperparameters": {"epochs": 2, "dropout_everything": True}}},
     "tuning.hyperparameters.dropout_everything"),
])
def test_it_refuses_unknown_hyperparameters_by_name(client, key, job_body, hyperparameters, param):
    error = refused(create_job(client, key, **job_body, **hyperparameters))
    assert error["param"] == param and param.rsplit(".", 1)[-1] in error["message"]


@pytest.mark.parametrize(("options", "param"), [
    ({"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
    ({"metadata": {"team": "support"}}, "metadata"),
])
def test_it_refuses_options_it_would_not_keep(client, key, job_body, options, param):
    error = refused(create_job(client, key, **job_body, **options))
    assert error["param"] == param and error["code"] == "unsupported_parameter"


@pytest.mark.parametrize(("hyperparameters", "param"), [
    ({"hyperparameters": {"n_epochs": 1_000_000_000}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 100_000}}}},
     "method.supervised.hyperparameters.batch_size"),
    ({"hyperparameters": {"learning_rate_multiplier": 1e9}}, "hyperparameters.learning_rate_multiplier"),
    ({"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier"),
    ({"seed": 2**70}, "seed"),
    ({"seed": -5}, "seed"),
    ({"tuning": {"hyperparameters": {"epochs": 1_000_000_000}}}, "tuning.hyperparameters.epochs"),
    ({"tuning": {"hyperparameters": {"batch_size": 0}}}, "tuning.hyperparameters.batch_size"),
    ({"tuning": {"hyperparameters": {"seed": 2**40}}}, "tuning.hyperparameters.seed"),
    ({"tuning": {"hyperparameters": {"epochs": "many"}}}, "tuning.hyperparameters.epochs"),
])
def test_it_bounds_the_numbers_of_a_job(client, key, job_body, hyperparameters, param):
    error = refused(create_job(client, key, **job_body, **hyperparameters))
    assert error["param"] == param


def test_the_bounds_hold_for_every_caller_of_create_job(alice, sentiment_dataset, tiny_encoder_base):
    with pytest.raises(jobs.JobRequestError, match="n_epochs must be between 1 and 100"):
        jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, overrides={"epochs": 10**9},
                        enqueue=False)
    assert not FineTuneJob.objects.exists()


def fill_the_queue(organization, base, dataset) -> list[FineTuneJob]:
    return [jobs.create_job(organization, base, dataset, enqueue=False) for _ in range(ACTIVE_JOBS_PER_ORGANIZATION)]


def test_it_caps_active_jobs_per_organization(client, key, job_body, alice, sentiment_dataset, tiny_encoder_base):
    queued = fill_the_queue(alice.organization, tiny_encoder_base, sentiment_dataset)
    response = create_job(client, key, **job_body)
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "too_many_active_jobs" and str(ACTIVE_JOBS_PER_ORGANIZATION) in error["message"]
    assert FineTuneJob.objects.count() == ACTIVE_JOBS_PER_ORGANIZATION
    # A finished (here: cancelled) job frees its place.
    jobs.request_cancel(queued[0])
    assert create_job(client, key, **job_body).status_code == 200


def test_the_cap_is_per_organization(client, charlie, alice, sentiment_dataset, tiny_encoder_base, charlie_dataset):
    fill_the_queue(alice.organization, tiny_encoder_base, sentiment_dataset)
    charlie_key = create_api_key(charlie.organization, "api")[1]
    response = create_job(client, charlie_key, model=tiny_encoder_base.slug, training_file=charlie_dataset.openai_id)
    assert response.status_code == 200, response.content


def test_the_web_form_meets_the_same_cap(alice, sentiment_dataset, tiny_encoder_base):
    fill_the_queue(alice.organization, tiny_encoder_base, sentiment_dataset)
    response = alice.client.post(reverse("finetune:job_new"), {
        "base": tiny_encoder_base.slug, "dataset": sentiment_dataset.pk, "method": "lora", "suffix": "moods"})
    assert response.status_code == 400
    assert f"{ACTIVE_JOBS_PER_ORGANIZATION} fine-tuning jobs" in response.content.decode()
    assert FineTuneJob.objects.count() == ACTIVE_JOBS_PER_ORGANIZATION
