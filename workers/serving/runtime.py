"""The inference worker's one engine, its control channel, and the request handlers the Celery
tasks call (worker-only)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial

from channels.layers import get_channel_layer
from django.conf import settings

from core.broadcast import LoopThread
from store.inference.heartbeat import Heartbeat, new_worker_id
from store.inference.protocol import INTERNAL, ClassificationRequest, EmbeddingRequest, EngineError, GenerationRequest
from workers.serving.relay import RelaySink, send_with_retry

logger = logging.getLogger(__name__)

# Once a worker has accepted a request, it may wait this long in the engine's queue.
ENGINE_QUEUE_SECONDS = 120.0
MAX_REQUEST_SECONDS = 600.0


class ServingRuntime:
    _instance: ServingRuntime | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        from workers.models.loading import dtype_for, encoder_dtype_for, pick_device
        from workers.serving.engine import InferenceEngine
        from workers.serving.resolver import resolve_model_key

        device = pick_device(settings.INFERENCE_DEVICE)
        self.engine = InferenceEngine(resolve=resolve_model_key, device=device, dtype=dtype_for(device),
                                      memory_budget_bytes=settings.SERVING_MEMORY_BUDGET_BYTES,
                                      max_batch=settings.SERVING_MAX_BATCH, encoder_dtype=encoder_dtype_for(device),
                                      packed_weights=settings.INFERENCE_PACKED_WEIGHTS,
                                      prompt_cache_bytes=settings.INFERENCE_PROMPT_CACHE_BYTES)
        self.engine.start()
        self.loop = LoopThread.get()
        self.layer = get_channel_layer()
        self.control_channel = self.loop.submit(self.layer.new_channel()).result(10)
        self.loop.submit(self._listen_for_control())
        # Callers waiting on this worker's replies watch this heartbeat: if the process dies, they fail
        # in seconds instead of waiting out their idle timeout.
        self.heartbeat = Heartbeat(new_worker_id()).start()
        logger.info("serving engine ready on %s (budget %.1f GiB, batch %d)", device,
                    settings.SERVING_MEMORY_BUDGET_BYTES / 1024**3, settings.SERVING_MAX_BATCH)

    @classmethod
    def get(cls) -> ServingRuntime:
        with cls._lock:
            if cls._instance is None:
                cls._instance = ServingRuntime()
            return cls._instance

    async def _listen_for_control(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.control_channel)
            except Exception:
                logger.exception("control channel receive failed")
                continue
            if message.get("type") == "inference.cancel":
                self.engine.cancel(message["request_id"])

    def _accept(self, payload: dict, reply_channel: str) -> RelaySink | None:
        announced = self._announce(payload, reply_channel)
        if announced is None:
            return None
        sink, sent = announced
        sent.result(5)
        return sink

    def _announce(self, payload: dict, reply_channel: str) -> tuple[RelaySink, Future] | None:
        """Tell the caller this worker took the request (the send runs on the loop thread: `sent`)."""
        expires_at = payload.get("expires_at")
        if expires_at is not None and expires_at < time.time():
            # The caller already gave up (and answered 503): serving it now would be stale work.
            logger.info("dropped expired request %s", payload.get("request_id"))
            return None
        sink = RelaySink(self.layer, reply_channel, payload["request_id"])
        accepted = {"type": "inference.accepted", "control": self.control_channel,
                    "worker": self.heartbeat.worker_id}
        return sink, self.loop.submit(send_with_retry(self.layer, reply_channel, accepted, 2.0))

    def _wait(self, sink: RelaySink, request_id: str) -> None:
        if not sink.finished.wait(MAX_REQUEST_SECONDS):
            self.engine.cancel(request_id)
            logger.error("request %s did not finish within %s s", request_id, MAX_REQUEST_SECONDS)

    def handle_generation(self, payload: dict, reply_channel: str) -> None:
        sink = self._accept(payload, reply_channel)
        if sink is None:
            return
        request = GenerationRequest(**{**payload, "expires_at": time.time() + ENGINE_QUEUE_SECONDS})
        self.engine.submit_generation(request, sink)
        self._wait(sink, request.request_id)

    def handle_classification(self, payload: dict, reply_channel: str) -> None:
        sink = self._accept(payload, reply_channel)
        if sink is None:
            return
        request = ClassificationRequest(**{**payload, "expires_at": time.time() + ENGINE_QUEUE_SECONDS})
        self.engine.submit_classification(request, sink)
        self._wait(sink, request.request_id)

    def answer_once(self, payload: dict, reply_channel: str, work: Callable[[], dict]) -> None:
        """For worker tasks built on the engine that answer once (knowledge retrieval): accept, run
        `work` in this task thread, answer with its result or its EngineError. The work starts while
        `accepted` is on its way (~1.5 ms of a retrieval's ~30); the answer follows it."""
        announced = self._announce(payload, reply_channel)
        if announced is None:
            return
        sink, sent = announced
        answer: Callable[[], None]
        try:
            answer = partial(sink.on_done, work())
        except EngineError as error:
            answer = partial(sink.on_error, error.code, error.message)
        except Exception as error:
            logger.exception("request %s failed", payload.get("request_id"))
            answer = partial(sink.on_error, INTERNAL, f"{type(error).__name__}: {error}")
        sent.result(5)
        answer()
        sink.finished.wait(MAX_REQUEST_SECONDS)

    def handle_embedding(self, payload: dict, reply_channel: str) -> None:
        sink = self._accept(payload, reply_channel)
        if sink is None:
            return
        request = EmbeddingRequest(**{**payload, "expires_at": time.time() + ENGINE_QUEUE_SECONDS})
        self.engine.submit_embedding(request, sink)
        self._wait(sink, request.request_id)
