"""An inference worker killed mid-reply on the live stack: the stream ends with an error event within
seconds (the worker's heartbeat stops), runstack restarts the worker, and the site keeps serving."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import redis

from store.inference.heartbeat import worker_key
from tests.conftest import celery_client
from tests.factories import deploy_tiny_bot, organization_with_key
from tests.store.test_streaming_live import open_stream

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def chatty_folder(tmp_path_factory):
    from tests.tiny_models import build_tiny_chat_model, silence_end_of_turn

    # Slow enough (~10 ms a token on one core) that a 2000-token reply is still being generated when the worker
    # is killed: with 8 layers of width 32 a quiet worker had finished all of it into Redis while the web process was
    # still relaying the first tokens, and the stream then ended normally (a CI failure).
    folder = silence_end_of_turn(build_tiny_chat_model(tmp_path_factory.mktemp("chatty-dies"), seed=3, hidden=256,
                                                       layers=16))
    # Rotary positions: a longer context needs no new weights.
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    return folder


def inference_worker_pid(data_dir: str) -> int:
    marker = f"GPT_STORE_DATA_DIR={data_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environment and b"worker" in command and b"inference" in command:
            return int(entry.name)
    raise AssertionError("no inference worker is running")


def data_events(body: bytes) -> list[str]:
    return [line.removeprefix("data: ") for line in body.decode().splitlines() if line.startswith("data: ")]


def test_a_killed_worker_fails_its_stream_fast_and_is_restarted(live, chatty_folder):
    from store.catalog import import_model

    organization, _, key = organization_with_key()
    deploy_tiny_bot(organization, import_model(str(chatty_folder), slug="chatty-dies"), slug="chatty-dies-bot")
    body = {"model": "chatty-dies-bot", "max_tokens": 2000, "stream": True,
            "messages": [{"role": "user", "content": "Talk forever"}]}
    response = open_stream(live.url, key, body)
    assert response.status == 200
    first = [response.readline() for _ in range(8)]
    assert sum(line.startswith(b"data: {") for line in first) >= 3, first  # it is generating

    beating = set(redis.Redis.from_url(live.redis_url).keys(worker_key("*")))
    assert beating, "the inference worker publishes no heartbeat"
    os.kill(inference_worker_pid(live.env["GPT_STORE_DATA_DIR"]), signal.SIGKILL)
    killed = time.monotonic()
    events = data_events(b"".join(first) + response.read())
    assert time.monotonic() - killed < 15  # the heartbeat's TTL, not the 120 s idle timeout
    assert json.loads(events[-2])["error"]["code"] == "no_inference_worker"
    assert events[-1] == "[DONE]"

    deadline = time.monotonic() + 30
    while not re.search(r"inference exited with code (-9|137); restarting in 1 s \(1st restart\)", live.log()):
        assert time.monotonic() < deadline, live.log()[-3000:]
        time.sleep(0.2)
    # The restarted worker takes requests again, and the site served all along.
    celery_client(live.redis_url).send_task("core.ping", args=["inference"], queue="inference").get(timeout=120)
    again = data_events(open_stream(live.url, key, {**body, "max_tokens": 20}).read())
    assert again[-1] == "[DONE]" and all('"error"' not in event for event in again)
    assert set(redis.Redis.from_url(live.redis_url).keys(worker_key("*"))) - beating  # the new worker beats
