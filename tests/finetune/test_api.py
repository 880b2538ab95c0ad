"""/v1/files and /v1/fine_tuning/jobs in OpenAI's shapes (the SDK round trip runs in the live tests)."""

import json

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import Dataset, FineTuneJob
from store.api_keys import create_api_key
from tests.factories import bearer
from tests.finetune.conftest import sentiment_csv


def upload(client, key, data: bytes, name="support.csv", purpose="fine-tune"):
    return client.post("/v1/files", {"file": SimpleUploadedFile(name, data), "purpose": purpose}, **bearer(key))


def key_for(person):
    return create_api_key(person.organization, "api")[1]


def create_job(client, key, body):
    return client.post("/v1/fine_tuning/jobs", data=json.dumps(body), content_type="application/json", **bearer(key))


def test_it_uploads_a_valid_file(client, alice):
    response = upload(client, key_for(alice), sentiment_csv())
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "file" and body["purpose"] == "fine-tune" and body["status"] == "processed"
    assert body["id"] == Dataset.objects.get().openai_id and body["filename"] == "support.csv"


def test_it_rejects_an_invalid_file_with_line_numbers_and_stores_nothing(client, alice):
    response = upload(client, key_for(alice), sentiment_csv() + b'"orphan",\n')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "file" and "line 14: empty label" in error["message"]
    assert not Dataset.objects.exists()


def test_it_rejects_another_purpose(client, alice):
    response = upload(client, key_for(alice), sentiment_csv(), purpose="assistants")
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"


@override_settings(DATASET_MAX_BYTES=100)
def test_it_rejects_an_oversized_file_with_413(client, alice):
    response = upload(client, key_for(alice), sentiment_csv(repeat=40))
    assert response.status_code == 413
    assert not Dataset.objects.exists()


def test_it_lists_retrieves_and_deletes_files_of_its_organization_only(client, alice, charlie_dataset):
    key = key_for(alice)
    mine = upload(client, key, sentiment_csv()).json()
    listed = client.get("/v1/files", **bearer(key)).json()
    assert [f["id"] for f in listed["data"]] == [mine["id"]]
    assert client.get(f"/v1/files/{charlie_dataset.openai_id}", **bearer(key)).status_code == 404
    assert client.delete(f"/v1/files/{charlie_dataset.openai_id}", **bearer(key)).status_code == 404
    assert client.delete(f"/v1/files/{mine['id']}", **bearer(key)).json() == {
        "id": mine["id"], "object": "file", "deleted": True}


def test_it_creates_a_job_in_openai_shape(client, alice, sentiment_dataset, tiny_encoder_base):
    key = key_for(alice)
    response = create_job(client, key, {
        "model": "tiny-encoder", "training_file": sentiment_dataset.openai_id, "suffix": "moods", "seed": 7,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4,
                                                                            "learning_rate_multiplier": 2}}}})
    assert response.status_code == 200, response.content
    job = response.json()
    assert job["object"] == "fine_tuning.job" and job["id"].startswith("ftjob-")
    assert job["status"] == "queued" and job["model"] == "tiny-encoder" and job["fine_tuned_model"] is None
    assert job["hyperparameters"] == {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2.0}
    assert job["seed"] == 7 and job["training_file"] == sentiment_dataset.openai_id
    assert job["tuning"]["task"] == "sentiment" and job["tuning"]["method"] == "full"


def test_it_takes_the_legacy_hyperparameters_and_our_extension(client, alice, sentiment_dataset, tiny_encoder_base):
    response = create_job(client, key_for(alice), {
        "model": "tiny-encoder", "training_file": sentiment_dataset.openai_id,
        "hyperparameters": {"n_epochs": 2}, "tuning": {"method": "lora", "hyperparameters": {"lora_r": 4}}})
    job = FineTuneJob.objects.get(public_id=response.json()["id"].removeprefix("ftjob-"))
    assert (job.method, job.hyperparameters["epochs"], job.hyperparameters["lora_r"]) == ("lora", 2, 4)


def test_it_rejects_bad_job_requests_naming_the_param(client, alice, sentiment_dataset, charlie_dataset,
                                                       tiny_encoder_base):
    key = key_for(alice)
    cases = [
        ({"model": "tiny-encoder", "training_file": "file-nope"}, 400, "training_file"),
        ({"model": "tiny-encoder", "training_file": charlie_dataset.openai_id}, 400, "training_file"),
        ({"model": "no-such-model", "training_file": sentiment_dataset.openai_id}, 404, "model"),
        ({"model": "tiny-encoder", "training_file": sentiment_dataset.openai_id, "method": {"type": "dpo"}},
         400, "method.type"),
        ({"model": "tiny-encoder", "training_file": sentiment_dataset.openai_id, "learning_rate": 1}, 400,
         "learning_rate"),
        ({"training_file": sentiment_dataset.openai_id}, 400, "model"),
    ]
    for body, status, param in cases:
        response = create_job(client, key, body)
        assert response.status_code == status, (body, response.content)
        assert response.json()["error"]["param"] == param
    assert not FineTuneJob.objects.exists()


def test_it_lists_jobs_newest_first_with_pagination(client, alice, sentiment_dataset, tiny_encoder_base):
    created = [jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix=f"run{i}")
               for i in range(3)]
    key = key_for(alice)
    first = client.get("/v1/fine_tuning/jobs?limit=2", **bearer(key)).json()
    assert [j["id"] for j in first["data"]] == [created[2].openai_id, created[1].openai_id]
    assert first["has_more"] is True
    second = client.get(f"/v1/fine_tuning/jobs?limit=2&after={created[1].openai_id}", **bearer(key)).json()
    assert [j["id"] for j in second["data"]] == [created[0].openai_id] and second["has_more"] is False


def test_it_retrieves_cancels_and_lists_events(client, alice, sentiment_dataset, tiny_encoder_base):
    job = jobs.create_job(alice.organization, tiny_encoder_base, sentiment_dataset, suffix="moods")
    key = key_for(alice)
    assert client.get(f"/v1/fine_tuning/jobs/{job.openai_id}", **bearer(key)).json()["status"] == "queued"
    cancelled = client.post(f"/v1/fine_tuning/jobs/{job.openai_id}/cancel", **bearer(key)).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"/v1/fine_tuning/jobs/{job.openai_id}/cancel", **bearer(key))
    assert again.status_code == 400
    events = client.get(f"/v1/fine_tuning/jobs/{job.openai_id}/events", **bearer(key)).json()
    assert events["data"][0]["message"] == "Job cancelled before it started."
    assert all(e["object"] == "fine_tuning.job.event" for e in events["data"])
    checkpoints = client.get(f"/v1/fine_tuning/jobs/{job.openai_id}/checkpoints", **bearer(key)).json()
    assert checkpoints == {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}


def test_it_hides_other_organizations_jobs(client, alice, charlie, tiny_encoder_base):
    dataset = create_dataset(charlie.organization, sentiment_csv(), "c.csv").dataset
    job = jobs.create_job(charlie.organization, tiny_encoder_base, dataset, suffix="secret")
    key = key_for(alice)
    for path in ("", "/events", "/checkpoints"):
        assert client.get(f"/v1/fine_tuning/jobs/{job.openai_id}{path}", **bearer(key)).status_code == 404
    assert client.post(f"/v1/fine_tuning/jobs/{job.openai_id}/cancel", **bearer(key)).status_code == 404
    assert client.get("/v1/fine_tuning/jobs", **bearer(key)).json()["data"] == []
    job.refresh_from_db()
    assert job.status == "queued"
