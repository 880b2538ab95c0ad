"""The official `openai` Python SDK drives the fine-tuning API's later steps against the live stack: checkpoints
as models, a file's content, and continued training from a tuned model."""

import time

import openai
import pytest

from tests.factories import organization_with_key
from tests.finetune.test_runner import dialogue_jsonl

pytestmark = pytest.mark.live


def wait_until_done(client, job_id: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    events = [event.message for event in client.fine_tuning.jobs.list_events(job_id, limit=20)]
    raise AssertionError(f"{job_id} still {job.status} after {timeout} s: {events}")


def test_the_python_sdk_calls_checkpoints_downloads_files_and_continues_training(live, tiny_chat_base, tmp_path):
    _, _, key = organization_with_key("Checkpoint Shoes")
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=120)
    data = dialogue_jsonl()
    path = tmp_path / "faq.jsonl"
    path.write_bytes(data)
    uploaded = client.files.create(file=path.open("rb"), purpose="fine-tune")
    assert client.files.content(uploaded.id).read() == data

    job = client.fine_tuning.jobs.create(
        model="tiny-chat", training_file=uploaded.id, suffix="faq", hyperparameters={"n_epochs": 2, "batch_size": 4},
        extra_body={"tuning": {"hyperparameters": {"max_seq_length": 96, "checkpoint_every_steps": 2,
                                                   "keep_checkpoints": 10}}})
    job = wait_until_done(client, job.id)
    assert job.status == "succeeded", job.error
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [6, 4, 2]
    for checkpoint in (checkpoints[0], checkpoints[-1]):
        reply = client.chat.completions.create(model=checkpoint.fine_tuned_model_checkpoint, max_tokens=4,
                                               messages=[{"role": "user", "content": "Do you ship to Canada?"}])
        assert reply.model == checkpoint.fine_tuned_model_checkpoint and reply.usage.completion_tokens >= 1
    assert not [m.id for m in client.models.list() if ":ckpt-step-" in m.id]

    continued = client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=uploaded.id,
                                               hyperparameters={"n_epochs": 1, "batch_size": 4},
                                               extra_body={"tuning": {"hyperparameters": {"max_seq_length": 96}}})
    assert continued.model == job.fine_tuned_model
    continued = wait_until_done(client, continued.id)
    assert continued.status == "succeeded", continued.error
    assert continued.fine_tuned_model not in (None, job.fine_tuned_model)
    reply = client.chat.completions.create(model=continued.fine_tuned_model, max_tokens=4,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert reply.usage.completion_tokens >= 1
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=uploaded.id,
                                       extra_body={"tuning": {"method": "ia3"}})
    assert refused.value.body["param"] == "model" and "keeps the method" in refused.value.body["message"]
