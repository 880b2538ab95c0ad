"""An inference worker that dies mid-reply is noticed within seconds, not after the idle timeout.

The web-side client runs for real against the session's Redis (the heartbeat keys) and the unit tests'
in-memory channel layer; a fake worker answers on the reply channel with a real worker Heartbeat, and
"dies" by stopping it (its key then expires, as when the process is killed).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.layers import get_channel_layer
from django.test import override_settings

from store.inference import client, heartbeat
from store.inference.client import InferenceUnavailable, classify, new_request_id, stream_generation
from store.inference.heartbeat import Heartbeat, is_alive, new_worker_id
from store.inference.protocol import ClassificationRequest, GenerationRequest

BEAT, TTL = 0.1, 0.5


@pytest.fixture(autouse=True)
def _fast_heartbeat(monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", BEAT)


class FakeWorker:
    """Takes the request from the broker and answers on its reply channel as workers/serving/runtime.py
    does; `script` says what it sends after `accepted`."""

    def __init__(self, monkeypatch, script) -> None:
        self.heartbeat = Heartbeat(new_worker_id(), interval=BEAT, ttl=TTL).start()
        self.script = script
        self.loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        monkeypatch.setattr(client, "_publish", self.publish)

    def publish(self, task: str, payload: dict, reply_channel: str, expires_in: float) -> None:
        asyncio.run_coroutine_threadsafe(self.answer(reply_channel), self.loop)

    async def answer(self, reply: str) -> None:
        await self.layer.send(reply, {"type": "inference.accepted", "control": "specific.nobody!x",
                                      "worker": self.heartbeat.worker_id})
        await self.script(self, reply)

    def die(self) -> None:
        self.heartbeat.stop()


def generation() -> GenerationRequest:
    return GenerationRequest(request_id=new_request_id(), model_key="base:x",
                             messages=[{"role": "user", "content": "Hi"}])


async def starts_then_dies(worker: FakeWorker, reply: str) -> None:
    await worker.layer.send(reply, {"type": "inference.start", "info": {}})
    await worker.layer.send(reply, {"type": "inference.chunk", "seq": 0, "text": "Hel"})
    worker.die()


@override_settings(SERVING_IDLE_TIMEOUT=120.0)
async def test_a_stream_fails_within_seconds_when_its_worker_dies(monkeypatch):
    FakeWorker(monkeypatch, starts_then_dies)
    received: list[str] = []
    started = time.monotonic()

    async def consume() -> None:
        async for event in stream_generation(generation()):
            if event.kind == "text":
                received.append(event.text)

    with pytest.raises(InferenceUnavailable, match="inference worker serving this request stopped"):
        await asyncio.wait_for(consume(), 10)  # the idle timeout is 120 s
    assert received == ["Hel"]
    assert time.monotonic() - started < 5


@override_settings(SERVING_IDLE_TIMEOUT=120.0)
async def test_a_single_answer_fails_within_seconds_when_its_worker_dies(monkeypatch):
    async def dies(worker: FakeWorker, reply: str) -> None:
        worker.die()

    FakeWorker(monkeypatch, dies)
    request = ClassificationRequest(request_id=new_request_id(), model_key="tuned:x", texts=["great shoes"])
    with pytest.raises(InferenceUnavailable):
        await asyncio.wait_for(classify(request), 10)


async def test_a_quiet_worker_that_still_beats_is_waited_for(monkeypatch):
    async def thinks_then_answers(worker: FakeWorker, reply: str) -> None:
        # Silent for ten beats (twice the TTL): a stale key would have expired by then.
        beats = worker.heartbeat.beats
        assert await asyncio.to_thread(worker.heartbeat.wait_for_beats, beats + 10, 10)
        await worker.layer.send(reply, {"type": "inference.done", "result": {"text": "Hello", "completion_tokens": 2}})

    worker = FakeWorker(monkeypatch, thinks_then_answers)
    try:
        events = [event async for event in stream_generation(generation())]
    finally:
        worker.die()
    assert [(event.kind, event.text) for event in events] == [("text", "Hello"), ("done", "")]


async def test_the_heartbeat_key_expires_once_the_worker_stops_beating():
    beating = Heartbeat(new_worker_id(), interval=BEAT, ttl=TTL).start()
    assert await is_alive(beating.worker_id)
    beating.stop()
    deadline = time.monotonic() + 5
    while await is_alive(beating.worker_id):
        assert time.monotonic() < deadline, "the key outlived its TTL"
        await asyncio.sleep(BEAT)
