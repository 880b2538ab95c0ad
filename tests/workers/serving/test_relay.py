"""The worker's relay to a reply channel: the first text is not held back, the final message ends the wait."""

import threading

import pytest

from workers.serving import relay
from workers.serving.relay import RelaySink

WAIT = 10.0  # generous: each wait ends at the event, long before this on a working relay


class RecordingLayer:
    """A channel layer that records what is sent; waiters block on a message of a given type."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self._changed = threading.Condition()

    async def send(self, channel: str, message: dict) -> None:
        with self._changed:
            self.sent.append(message)
            self._changed.notify_all()

    def wait_for(self, kind: str, count: int = 1) -> list[dict]:
        with self._changed:
            assert self._changed.wait_for(lambda: sum(m["type"] == kind for m in self.sent) >= count, WAIT), \
                f"no {kind} within {WAIT} s: {self.sent}"
            return [m for m in self.sent if m["type"] == kind]


@pytest.fixture
def layer(monkeypatch) -> RecordingLayer:
    # A window far longer than any wait below: a message that waited for it would fail the test.
    monkeypatch.setattr(relay, "COALESCE_SECONDS", 3600.0)
    return RecordingLayer()


def test_the_first_text_leaves_at_once_after_start(layer):
    sink = RelaySink(layer, "reply", "r1")
    sink.on_start({"prompt_tokens": 5})
    layer.wait_for("inference.start")
    sink.on_tokens("Hello", 1)

    assert layer.wait_for("inference.chunk")[0] == {"type": "inference.chunk", "seq": 0, "text": "Hello"}
    sink.on_done({"text": "Hello"})
    assert sink.finished.wait(WAIT)


def test_text_after_the_first_chunk_is_coalesced_and_the_final_message_cuts_the_window_short(layer):
    sink = RelaySink(layer, "reply", "r2")
    sink.on_tokens("Hel", 1)
    layer.wait_for("inference.chunk")
    sink.on_tokens("lo", 1)
    sink.on_tokens(" there", 1)
    sink.on_done({"text": "Hello there"})

    assert layer.wait_for("inference.done")[0]["result"] == {"text": "Hello there"}
    assert sink.finished.wait(WAIT)
    # The two later pieces went out as one chunk (or only in the final text), in order, never apart.
    chunks = [m for m in layer.sent if m["type"] == "inference.chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["text"] for c in chunks) in ("Hel", "Hello there")
    assert layer.sent[-1]["type"] == "inference.done"


def test_an_error_cuts_the_window_short_too(layer):
    sink = RelaySink(layer, "reply", "r3")
    sink.on_tokens("Hi", 1)
    layer.wait_for("inference.chunk")
    sink.on_error("internal", "boom")

    assert layer.wait_for("inference.error")[0]["message"] == "boom"
    assert sink.finished.wait(WAIT)
