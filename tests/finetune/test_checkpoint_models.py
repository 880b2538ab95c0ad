"""A job's checkpoints are callable models (`ft:…:ckpt-step-<n>`), served from that checkpoint's own weights.

The SDK round trip through a live worker is in test_sdk_fine_tuning.py; here the resolution, the isolation
and the engine, in this process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from finetune import jobs
from finetune.datasets import create_dataset
from finetune.models import FineTuneJob, JobCheckpoint
from finetune.runner import run_job
from store.api.errors import ApiError
from store.api.targets import find_target
from store.api_keys import create_api_key
from store.inference.protocol import ClassificationRequest, EngineError, GenerationRequest
from tests.factories import bearer, train_tiny_sentiment
from tests.finetune.test_runner import dialogue_jsonl


def train_with_checkpoints(organization, base):
    dataset = create_dataset(organization, dialogue_jsonl(), "faq.jsonl").dataset
    job = jobs.create_job(organization, base, dataset, suffix="faq", enqueue=False,
                          overrides={"epochs": 2, "batch_size": 4, "max_seq_length": 96,
                                     "checkpoint_every_steps": 2, "keep_checkpoints": 10})
    job = run_job(job.pk, "test")
    assert job.status == "succeeded", job.error_message
    return job


@pytest.fixture
def tuned_job(alice, tiny_chat_base):
    return train_with_checkpoints(alice.organization, tiny_chat_base)


def checkpoint_ids(client, key, job) -> dict[int, str]:
    listed = client.get(f"/v1/fine_tuning/jobs/{job.openai_id}/checkpoints", **bearer(key)).json()["data"]
    return {c["step_number"]: c["fine_tuned_model_checkpoint"] for c in listed}


def test_a_checkpoint_id_names_that_checkpoints_weights(transactional_db, client, alice, tuned_job):
    from workers.serving.resolver import resolve_model_key

    api_key, key = create_api_key(alice.organization, "api")
    ids = checkpoint_ids(client, key, tuned_job)
    assert sorted(ids) == [2, 4, 6] and all(i.endswith(f":ckpt-step-{step}") for step, i in ids.items())
    seen = []
    for step, model_id in ids.items():
        target = find_target(api_key, model_id)
        checkpoint = JobCheckpoint.objects.get(job=tuned_job, step=step)
        assert (target.model_id, target.task, target.model_key) == (model_id, "dialogue", f"checkpoint:{checkpoint.pk}")
        spec = resolve_model_key(target.model_key)
        assert (spec.kind, spec.adapter_type) == ("causal", "lora")
        assert spec.adapter_folder == str(Path(checkpoint.path) / "model")
        served = load_file(Path(spec.adapter_folder) / "adapter_model.safetensors")
        trained = {name.replace(".default", ""): tensor
                   for name, tensor in load_file(Path(checkpoint.path) / "trainable.safetensors").items()}
        assert served.keys() == trained.keys()
        assert all((served[name] == trained[name]).all() for name in served)
        seen.append(served)
    assert any((seen[0][name] != seen[-1][name]).any() for name in seen[0])  # each step has its own weights
    retrieved = client.get(f"/v1/models/{ids[4]}", **bearer(key)).json()
    assert (retrieved["id"], retrieved["root"]) == (ids[4], "tiny-chat")


def test_the_engine_answers_with_a_checkpoint(transactional_db, alice, tiny_chat_base):
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    job = train_with_checkpoints(alice.organization, tiny_chat_base)
    checkpoint = job.checkpoints.get(step=4)
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_generation(GenerationRequest("ckpt", f"checkpoint:{checkpoint.pk}",
                                                   [{"role": "user", "content": "Do you ship to Canada?"}],
                                                   max_tokens=4, temperature=0), sink)
        sink.wait()
    finally:
        engine.stop()
    assert sink.error is None and sink.result is not None and sink.result["completion_tokens"] >= 1


def test_a_fully_tuned_sentiment_checkpoint_classifies(transactional_db, alice, tiny_encoder_base):
    """Full fine-tunes save the whole model into the checkpoint, so the classifier head comes with it."""
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    tuned = train_tiny_sentiment(alice.organization, tiny_encoder_base, checkpoint_every_steps=2, keep_checkpoints=10)
    checkpoint = FineTuneJob.objects.get(tuned_model=tuned).checkpoints.order_by("step").first()
    spec = resolve_model_key(f"checkpoint:{checkpoint.pk}")
    assert (spec.kind, spec.adapter_type, spec.labels) == ("classifier", "full", tuned.labels)
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_classification(ClassificationRequest("moods", spec.key, ["I love it", "It broke"]), sink)
        sink.wait()
    finally:
        engine.stop()
    assert sink.error is None and sink.result is not None
    assert [item["label"] in tuned.labels for item in sink.result["results"]] == [True, True]


def test_another_organizations_checkpoint_is_an_unknown_model(client, alice, charlie, tiny_chat_base):
    job = train_with_checkpoints(charlie.organization, tiny_chat_base)
    charlie_ids = checkpoint_ids(client, create_api_key(charlie.organization, "c")[1], job)
    api_key, alice_key = create_api_key(alice.organization, "a")
    forged = charlie_ids[2].replace(":ckpt-step-2", ":ckpt-step-99")
    for model_id in (charlie_ids[2], forged, "ft:tiny-chat:alice-shoes:faq:deadbeef:ckpt-step-2"):
        for response in (client.get(f"/v1/models/{model_id}", **bearer(alice_key)),
                         client.post("/v1/chat/completions", content_type="application/json", **bearer(alice_key),
                                     data=json.dumps({"model": model_id,
                                                      "messages": [{"role": "user", "content": "hi"}]}))):
            assert response.status_code == 404, model_id
            assert response.json()["error"]["code"] == "model_not_found"
    with pytest.raises(ApiError):
        find_target(api_key, charlie_ids[2])


def test_checkpoints_are_not_listed_as_models(client, alice, tuned_job):
    key = create_api_key(alice.organization, "api")[1]
    ids = [m["id"] for m in client.get("/v1/models", **bearer(key)).json()["data"]]
    assert tuned_job.tuned_model.openai_id in ids
    assert not [i for i in ids if ":ckpt-step-" in i]  # as OpenAI: callable, not listed


def test_a_checkpoint_whose_files_were_deleted_is_a_clear_error(transactional_db, alice, tiny_chat_base):
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    job = train_with_checkpoints(alice.organization, tiny_chat_base)
    checkpoint = job.checkpoints.get(step=2)
    shutil.rmtree(checkpoint.path)
    with pytest.raises(EngineError) as error:
        resolve_model_key(f"checkpoint:{checkpoint.pk}")
    assert error.value.code == "model_not_found"
    assert f"checkpoint step 2 of {job.openai_id} were deleted" in error.value.message
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_generation(GenerationRequest("gone", f"checkpoint:{checkpoint.pk}",
                                                   [{"role": "user", "content": "hi"}], max_tokens=2), sink)
        sink.wait()
    finally:
        engine.stop()
    assert sink.error is not None and sink.error[0] == "model_not_found" and "were deleted" in sink.error[1]
