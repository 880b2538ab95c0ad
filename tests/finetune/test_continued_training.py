"""A fine-tuning job may start from a tuned model (`model: "ft:…"`): same foundation, the tuned weights as start."""

from __future__ import annotations

import json

import pytest
import torch
from django.urls import reverse
from safetensors.torch import load_file

from finetune.datasets import create_dataset
from finetune.models import FineTuneJob
from finetune.runner import build_spec, run_job
from store import deploy
from store.api_keys import create_api_key
from store.tuned import artifact_folder
from tests.factories import bearer, make_tuned, sentiment_csv_bytes, train_tiny_sentiment
from tests.finetune.test_runner import dialogue_jsonl


def create(client, key, body):
    return client.post("/v1/fine_tuning/jobs", data=json.dumps(body), content_type="application/json", **bearer(key))


@pytest.fixture
def moods_file(alice):
    return create_dataset(alice.organization, sentiment_csv_bytes(), "more-moods.csv").dataset


@pytest.fixture
def key(alice):
    return create_api_key(alice.organization, "api")[1]


def continue_job(client, key, parent, dataset, **extra) -> FineTuneJob:
    response = create(client, key, {"model": parent.openai_id, "training_file": dataset.openai_id,
                                    "hyperparameters": {"n_epochs": 1, "batch_size": 8}, **extra})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == parent.openai_id and body["tuning"]["parent_model"] == parent.openai_id
    return FineTuneJob.objects.get(public_id=body["id"].removeprefix("ftjob-"))


def test_a_lora_job_starts_from_its_parents_adapter_and_succeeds(client, alice, key, tiny_encoder_base, moods_file):
    from workers.training.modeling import build_model, trainable_parameters

    parent = train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora", lora_r=4)
    job = continue_job(client, key, parent, moods_file, suffix="moods")
    assert (job.base_model, job.method, job.parent_model) == (tiny_encoder_base, "lora", parent)
    assert job.hyperparameters["lora_r"] == 4  # the adapter's shape comes from the parent
    spec = build_spec(job)
    assert spec.init_from == artifact_folder(parent)
    model = build_model(spec, pad_token_id=0, total_steps=4)
    # peft's names in a model carry the adapter name (and the head's `modules_to_save`); its saved file does not.
    start = {name.replace(".default", "").replace(".modules_to_save", ""): p
             for name, p in trainable_parameters(model).items()}
    saved = load_file(artifact_folder(parent) / "adapter_model.safetensors")
    assert saved.keys() <= start.keys()  # LoRA matrices and the classification head, all trainable
    assert all(torch.equal(start[name].detach().float(), tensor.float()) for name, tensor in saved.items())
    job = run_job(job.pk, "test")
    assert job.status == "succeeded", job.error_message
    assert (job.tuned_model.base, job.tuned_model.method, job.tuned_model.slug) == (tiny_encoder_base, "lora",
                                                                                    "moods-v2")
    assert job.events.filter(message__contains=f"continuing from {parent.openai_id}").exists()
    page = alice.client.get(reverse("finetune:job_detail", args=[job.public_id])).content.decode()
    assert f"continues from <code>{parent.openai_id}</code>" in page


def test_a_full_fine_tune_continues_from_its_parents_weights(client, alice, key, tiny_encoder_base, moods_file):
    from workers.training.modeling import build_model

    parent = train_tiny_sentiment(alice.organization, tiny_encoder_base)  # an encoder's sentiment default: full
    job = continue_job(client, key, parent, moods_file)
    model = build_model(build_spec(job), pad_token_id=0, total_steps=4)
    saved = load_file(artifact_folder(parent) / "model.safetensors")
    weights = dict(model.named_parameters())
    assert saved.keys() <= weights.keys() and "classifier.weight" in saved  # the tuned head too, not a new one
    assert all(torch.equal(weights[name].detach(), tensor) for name, tensor in saved.items())
    assert run_job(job.pk, "test").status == "succeeded"


@pytest.mark.parametrize(("parent_method", "asked", "words"), [
    ("ia3", {"tuning": {"method": "lora"}}, "was tuned with IA3; continued training keeps the method"),
    ("adalora", {}, "cannot be trained further"),
    ("lora", {"tuning": {"hyperparameters": {"lora_r": 16}}}, "lora_r is 8 in"),
])
def test_it_refuses_an_incompatible_continuation_by_name(client, alice, key, tiny_encoder_base, moods_file,
                                                         parent_method, asked, words):
    parent = make_tuned(alice.organization, tiny_encoder_base, suffix="moods", task="sentiment",
                        method=parent_method, labels=list(moods_file.labels))
    parent.hyperparameters = {"lora_r": 8, "lora_alpha": 16, "target_modules": None}
    parent.save()
    response = create(client, key, {"model": parent.openai_id, "training_file": moods_file.openai_id, **asked})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == "model" and words in error["message"] and parent.openai_id in error["message"]
    assert not FineTuneJob.objects.exists()


def test_it_refuses_a_sentiment_file_with_other_labels(client, alice, key, tiny_encoder_base, moods_file):
    parent = make_tuned(alice.organization, tiny_encoder_base, suffix="moods", task="sentiment", method="full",
                        labels=["bad", "good"])
    response = create(client, key, {"model": parent.openai_id, "training_file": moods_file.openai_id})
    assert response.status_code == 400
    assert "classifies bad, good; the training file's labels (negative, neutral, positive) must be the same" in \
        response.json()["error"]["message"]


def test_it_refuses_a_file_of_another_task(client, alice, key, tiny_chat_base):
    parent = make_tuned(alice.organization, tiny_chat_base, suffix="faq", task="dialogue", method="lora")
    moods = create_dataset(alice.organization, sentiment_csv_bytes(), "m.csv").dataset
    response = create(client, key, {"model": parent.openai_id, "training_file": moods.openai_id})
    assert response.status_code == 400
    assert "is a dialogue model: continue it with a dialogue file" in response.json()["error"]["message"]


def test_another_organizations_tuned_model_is_an_unknown_model(client, alice, charlie, key, tiny_chat_base):
    theirs = make_tuned(charlie.organization, tiny_chat_base, suffix="secret")
    faq = create_dataset(alice.organization, dialogue_jsonl(), "faq.jsonl").dataset
    for model in (theirs.openai_id, theirs.openai_id.replace(theirs.short_id, "nope")):
        response = create(client, key, {"model": model, "training_file": faq.openai_id})
        assert response.status_code == 404, model
        assert response.json()["error"]["code"] == "model_not_found"
    assert not FineTuneJob.objects.exists()


def test_it_refuses_a_deployment_or_a_checkpoint_as_the_starting_point(client, alice, key, tiny_chat_base):
    from finetune.models import JobCheckpoint

    faq = create_dataset(alice.organization, dialogue_jsonl(), "faq.jsonl").dataset
    deploy.create_or_update(alice.organization, "helper", deploy.ModelChoice(base=tiny_chat_base))
    response = create(client, key, {"model": "helper", "training_file": faq.openai_id})
    assert response.status_code == 400 and "is a deployment" in response.json()["error"]["message"]
    job = FineTuneJob.objects.create(organization=alice.organization, base_model=tiny_chat_base, dataset=faq,
                                     task="dialogue", suffix="faq", status="succeeded")
    JobCheckpoint.objects.create(job=job, step=2, path="/nowhere")
    checkpoint = f"ft:tiny-chat:{alice.organization.slug}:faq:{job.public_id[:8]}:ckpt-step-2"
    response = create(client, key, {"model": checkpoint, "training_file": faq.openai_id})
    assert response.status_code == 400 and "is a checkpoint" in response.json()["error"]["message"]


def test_a_job_whose_parent_was_deleted_fails_with_a_clear_message(client, alice, key, tiny_encoder_base,
                                                                   moods_file):
    parent = make_tuned(alice.organization, tiny_encoder_base, suffix="moods", task="sentiment", method="full",
                        labels=list(moods_file.labels))
    job = continue_job(client, key, parent, moods_file)
    parent.delete()
    job = run_job(job.pk, "test")
    assert job.status == "failed"
    assert job.error_message == (f"The tuned model {job.parent_model_name} this job continues from was deleted; "
                                 "start a new job from its base model or another tuned model.")
