"""ServingRuntime.answer_once (knowledge retrieval): the work starts while `accepted` is on its way, and the
answer always follows it on the reply channel."""

import asyncio
import threading
from types import SimpleNamespace

import pytest
from channels.layers import InMemoryChannelLayer

from core.broadcast import LoopThread
from store.inference.protocol import EngineError
from workers.serving import runtime as runtime_module
from workers.serving.runtime import ServingRuntime


@pytest.fixture
def serving(monkeypatch):
    """A runtime without an engine (answer_once needs none) on an in-memory layer whose `accepted` send
    is held until the test lets it go."""
    layer = InMemoryChannelLayer()
    release = threading.Event()
    real_send = runtime_module.send_with_retry

    async def slow_accept(layer_, channel, message, give_up_after):
        await asyncio.to_thread(release.wait, 10)
        return await real_send(layer_, channel, message, give_up_after)

    monkeypatch.setattr(runtime_module, "send_with_retry", slow_accept)
    serving = ServingRuntime.__new__(ServingRuntime)
    serving.loop, serving.layer, serving.control_channel = LoopThread.get(), layer, "control"
    serving.heartbeat = SimpleNamespace(worker_id="worker-1")
    return SimpleNamespace(runtime=serving, layer=layer, release=release)


def received(serving, channel: str, count: int) -> list[dict]:
    async def take():
        return [await asyncio.wait_for(serving.layer.receive(channel), 10) for _ in range(count)]
    return serving.runtime.loop.submit(take()).result(20)


@pytest.mark.parametrize("fails", [False, True])
def test_the_work_runs_before_accepted_is_sent_and_its_answer_comes_after(serving, fails):
    ran = threading.Event()

    def work():
        ran.set()
        if fails:
            raise EngineError("model_not_found", "the knowledge base no longer exists")
        return {"candidates": []}

    channel = serving.runtime.loop.submit(serving.layer.new_channel()).result(5)
    thread = threading.Thread(target=serving.runtime.answer_once,
                              args=({"request_id": "r1"}, channel, work), daemon=True)
    thread.start()
    assert ran.wait(10)  # the work did not wait for `accepted` to be sent
    serving.release.set()
    first, second = received(serving, channel, 2)
    thread.join(10)
    assert first == {"type": "inference.accepted", "control": "control", "worker": "worker-1"}
    if fails:
        assert second["type"] == "inference.error" and second["code"] == "model_not_found"
    else:
        assert second == {"type": "inference.done", "result": {"candidates": []}}
