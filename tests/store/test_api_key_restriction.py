"""A key restricted to deployments calls inference for them and sees only them; everything else in /v1
(files, fine-tuning, other models) answers 403 in OpenAI's error shape."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from finetune.datasets import create_dataset
from finetune.models import Dataset
from store.api_keys import create_api_key
from tests.factories import bearer
from tests.finetune.conftest import sentiment_csv


@pytest.fixture
def restricted_key(alice, alice_deployment):
    return create_api_key(alice.organization, "support bot only", [alice_deployment])[1]


@pytest.fixture
def alice_file(alice):
    return create_dataset(alice.organization, sentiment_csv(), "support.csv").dataset


def assert_restricted(response):
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"].startswith("This API key is restricted to deployment acme-support")
    assert error["code"] == "restricted_key"


def test_it_lists_only_its_deployment(client, restricted_key, catalog):
    response = client.get("/v1/models", **bearer(restricted_key))
    assert [model["id"] for model in response.json()["data"]] == ["acme-support"]
    assert client.get("/v1/models/acme-support", **bearer(restricted_key)).status_code == 200
    assert client.get("/v1/models/smollm2-135m-instruct", **bearer(restricted_key)).status_code == 404


def test_it_may_call_inference_for_its_deployment(client, restricted_key):
    # No inference worker runs here: reaching the engine (503), or being refused for a bad option (400),
    # shows the request was let through.
    response = client.post("/v1/chat/completions", content_type="application/json", **bearer(restricted_key),
                           data=json.dumps({"model": "acme-support", "n": 2,
                                            "messages": [{"role": "user", "content": "Hi"}]}))
    assert response.status_code == 400 and response.json()["error"]["param"] == "n"


def test_it_cannot_list_files(client, restricted_key, alice_file):
    assert_restricted(client.get("/v1/files", **bearer(restricted_key)))


def test_it_cannot_read_or_delete_a_file(client, restricted_key, alice_file):
    assert_restricted(client.get(f"/v1/files/{alice_file.openai_id}", **bearer(restricted_key)))
    assert_restricted(client.delete(f"/v1/files/{alice_file.openai_id}", **bearer(restricted_key)))
    assert Dataset.objects.filter(pk=alice_file.pk).exists()


def test_it_cannot_upload_a_file(client, restricted_key, alice):
    response = client.post("/v1/files", {"file": SimpleUploadedFile("x.csv", sentiment_csv()),
                                         "purpose": "fine-tune"}, **bearer(restricted_key))
    assert_restricted(response)
    assert not Dataset.objects.exists()


@pytest.mark.parametrize("path", ["/v1/fine_tuning/jobs", "/v1/fine_tuning/jobs/ftjob-x",
                                  "/v1/fine_tuning/jobs/ftjob-x/events", "/v1/fine_tuning/jobs/ftjob-x/checkpoints"])
def test_it_cannot_see_fine_tuning_jobs(client, restricted_key, path):
    assert_restricted(client.get(path, **bearer(restricted_key)))


def test_it_cannot_create_or_cancel_fine_tuning_jobs(client, restricted_key, alice_file):
    assert_restricted(client.post("/v1/fine_tuning/jobs", content_type="application/json", **bearer(restricted_key),
                                  data=json.dumps({"model": "tiny-encoder", "training_file": alice_file.openai_id})))
    assert_restricted(client.post("/v1/fine_tuning/jobs/ftjob-x/cancel", **bearer(restricted_key)))


def test_an_unrestricted_key_still_reaches_files(client, alice_key, alice_file):
    assert client.get("/v1/files", **bearer(alice_key)).status_code == 200
