"""The official `openai` Python package against the live stack (Daphne + inference worker + Redis)."""

import json
import urllib.request

import openai
import pytest

from tests.factories import deploy_tiny_bot, organization_with_key, sentiment_csv_bytes, train_tiny_sentiment

pytestmark = pytest.mark.live


@pytest.fixture
def world(live, catalog, tiny_chat_base, tiny_encoder_base):
    organization, _, key = organization_with_key()
    deploy_tiny_bot(organization, tiny_chat_base)
    tuned = train_tiny_sentiment(organization, tiny_encoder_base)
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=120)
    return {"client": client, "key": key, "url": live.url, "tuned": tuned, "organization": organization}


def test_the_python_sdk_lists_models_and_completes_chats(world):
    client = world["client"]
    ids = [model.id for model in client.models.list()]
    assert "tiny-bot" in ids and world["tuned"].openai_id in ids and "smollm2-135m-instruct" in ids
    reply = client.chat.completions.create(model="tiny-bot", messages=[{"role": "user", "content": "Hello"}],
                                           max_tokens=8)
    assert reply.object == "chat.completion" and isinstance(reply.choices[0].message.content, str)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_the_python_sdk_streams_with_a_usage_chunk(world):
    stream = world["client"].chat.completions.create(
        model="tiny-bot", messages=[{"role": "user", "content": "Tell me about shoes"}], max_tokens=12, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1
    # greedy decoding: the same prompt gives the same text without streaming
    same = world["client"].chat.completions.create(
        model="tiny-bot", messages=[{"role": "user", "content": "Tell me about shoes"}], max_tokens=12)
    assert same.choices[0].message.content == text


def test_the_python_sdk_sees_openai_shaped_errors(world):
    client = world["client"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(model="tiny-bot", messages=[{"role": "user", "content": "hi"}],
                                       tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert tools.value.body["param"] == "tools"
    bad = openai.OpenAI(base_url=world["url"] + "/v1", api_key="gpts_bad_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_sentiment_over_raw_http(world):
    request = urllib.request.Request(
        world["url"] + "/v1/sentiment", method="POST",
        data=json.dumps({"model": world["tuned"].openai_id, "input": ["I love it", "It broke"]}).encode(),
        headers={"Authorization": f"Bearer {world['key']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert body["object"] == "list" and [item["index"] for item in body["data"]] == [0, 1]
    for item in body["data"]:
        assert item["label"] in ("negative", "neutral", "positive")
        assert abs(sum(item["scores"].values()) - 1) < 1e-4 and item["score"] == max(item["scores"].values())


def test_the_python_sdk_runs_the_fine_tuning_api(world, tmp_path):
    client = world["client"]
    path = tmp_path / "moods.csv"
    path.write_bytes(sentiment_csv_bytes())
    uploaded = client.files.create(file=path.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.status == "processed"
    job = client.fine_tuning.jobs.create(model="tiny-encoder", training_file=uploaded.id, suffix="sdk",
                                         hyperparameters={"n_epochs": 50},
                                         extra_body={"tuning": {"method": "lora"}})
    assert job.status in ("queued", "running") and job.hyperparameters.n_epochs == 50
    assert client.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5)]
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in ("cancelled", "running")  # a running job stops at its next step
    events = client.fine_tuning.jobs.list_events(job.id)
    assert any("ancel" in event.message for event in events)
    with pytest.raises(openai.BadRequestError) as invalid:
        client.files.create(file=("bad.jsonl", b'{"messages": [oops\n'), purpose="fine-tune")
    assert "line 1" in invalid.value.body["message"]
