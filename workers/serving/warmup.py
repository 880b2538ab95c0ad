"""Warming up the models a worker serves before customers arrive (`InferenceEngine.preload`).

Loading is not all the first request pays: the first prefill and decode steps of a process, and the first
batched ones again, cost several times a later one's (allocator and kernel first touches). So each model
gets one tiny request, and each chat model then WARMUP_BATCH at once, which prefill together on the first
one's cached prompt and decode as a batch.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

from store.inference.protocol import ClassificationRequest, EmbeddingRequest, GenerationRequest

if TYPE_CHECKING:
    from workers.serving.engine import InferenceEngine

logger = logging.getLogger(__name__)

WARMUP_MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
                   {"role": "user", "content": "Hello"}]
WARMUP_BATCH = 4  # chat requests warmed up together after the first


class WaitingSink:
    """Lets the warm-up wait for its requests."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.error: str | None = None

    def on_start(self, info: dict) -> None:
        pass

    def on_tokens(self, text: str, n_tokens: int) -> None:
        pass

    def on_done(self, result: dict) -> None:
        self.finished.set()

    def on_error(self, code: str, message: str) -> None:
        self.error = f"{code}: {message}"
        self.finished.set()


def warm_up(engine: InferenceEngine, model_keys: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    sinks: dict[str, list[WaitingSink]] = {}
    chat_models = []
    for key in model_keys:
        try:
            spec = engine.resolve(key)
        except Exception as error:  # a deployment whose model is gone: the worker serves the others
            logger.warning("cannot preload %s: %s", key, error)
            continue
        sink = WaitingSink()
        sinks[key] = [sink]
        request_id = f"warmup-{uuid.uuid4().hex}"
        if spec.kind == "classifier":
            engine.submit_classification(ClassificationRequest(request_id, key, ["Hello"]), sink)
        elif spec.kind == "encoder":
            engine.submit_embedding(EmbeddingRequest(request_id, key, ["Hello"]), sink)
        else:
            chat_models.append(key)
            engine.submit_generation(GenerationRequest(request_id, key, WARMUP_MESSAGES, max_tokens=2,
                                                       temperature=0), sink)
    if not _finished(sinks, deadline):
        return
    batch: dict[str, list[WaitingSink]] = {}
    with engine.one_admission():
        for key in chat_models:
            batch[key] = [WaitingSink() for _ in range(WARMUP_BATCH)]
            for i, sink in enumerate(batch[key]):
                messages = [*WARMUP_MESSAGES[:-1], {"role": "user", "content": f"Hello, question {i + 1}"}]
                engine.submit_generation(GenerationRequest(f"warmup-{uuid.uuid4().hex}", key, messages,
                                                           max_tokens=4, temperature=0), sink)
    _finished(batch, deadline)


def _finished(sinks: dict[str, list[WaitingSink]], deadline: float) -> bool:
    """Whether every warm-up request finished (each one that did not is logged)."""
    finished = True
    for key, key_sinks in sinks.items():
        for sink in key_sinks:
            if not sink.finished.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("preloading %s did not finish in time", key)
                finished = False
            elif sink.error:
                logger.warning("preloading %s failed: %s", key, sink.error)
    return finished
