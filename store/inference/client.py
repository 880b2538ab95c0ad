"""The web side of serving: hand a request to an inference worker and relay its reply.

No torch here (the web process imports this). A request goes out as a Celery task carrying a
reply channel; the worker answers on that channel: `accepted` (with its control channel, for
cancelling), `start`, numbered `chunk`s of text, then `done` (the authoritative result) or `error`.
If no worker accepts within SERVING_ACCEPT_TIMEOUT, the caller gets InferenceUnavailable (a 503).
The `accepted` message names the worker; when its heartbeat (store/inference/heartbeat.py) stops while
the reply is quiet, the worker died and the caller gets InferenceUnavailable within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass

from celery import current_app
from channels.layers import get_channel_layer
from django.conf import settings

from store.inference import heartbeat
from store.inference.protocol import ClassificationRequest, EmbeddingRequest, GenerationRequest

logger = logging.getLogger(__name__)

GENERATE_TASK = "store.serving.tasks.generate"
CLASSIFY_TASK = "store.serving.tasks.classify"
EMBED_TASK = "store.serving.tasks.embed"
INFERENCE_QUEUE = "inference"


class InferenceUnavailable(Exception):
    """No inference worker took the request in time, or the one that took it died."""


class InferenceError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class StreamEvent:
    kind: str  # "start" | "text" | "done"
    text: str = ""
    info: dict | None = None


def new_request_id() -> str:
    return uuid.uuid4().hex


def _publish(task: str, payload: dict, reply_channel: str, expires_in: float) -> None:
    # ignore_result: the answer comes on the reply channel. Without it (the web process does not know the
    # task, so Celery cannot read the task's own setting) each request subscribed to a Celery result
    # channel no result ever reaches, and unsubscribed when its AsyncResult was collected: two Redis
    # round trips for nothing (~0.7 ms of a ~4 ms publish, measured on the stack).
    current_app.send_task(task, args=[payload, reply_channel], queue=INFERENCE_QUEUE, expires=expires_in,
                          ignore_result=True)


async def _receive(layer, channel: str, timeout: float) -> dict | None:
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return None


async def _next_message(layer, reply: str, worker: str | None, idle_timeout: float) -> dict | None:
    """The next message on `reply`, or None after `idle_timeout` s of silence. While it is quiet, the
    heartbeat of the worker that accepted the request is checked every HEARTBEAT_SECONDS: a dead worker
    raises InferenceUnavailable."""
    # One receive for the whole wait: cancelling a receive forgets its channel (core/channel_layer.py),
    # so a message arriving later would be lost.
    receive = asyncio.ensure_future(layer.receive(reply))
    deadline = time.monotonic() + idle_timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            wait = min(remaining, heartbeat.HEARTBEAT_SECONDS) if worker else remaining
            await asyncio.wait({receive}, timeout=wait)
            if receive.done():
                return receive.result()
            if worker and not await heartbeat.is_alive(worker) and not receive.done():
                raise InferenceUnavailable("The inference worker serving this request stopped (it crashed or "
                                           "was restarted). Retry.")
    finally:
        if not receive.done():
            receive.cancel()


async def _dispatch(task: str, payload: dict) -> tuple:
    layer = get_channel_layer()
    # The default "specific." prefix on purpose: channels_redis serves all of a process's specific
    # channels from one list (one receiver pulls for all); another prefix would queue our receive behind
    # every WebSocket consumer's blocking receive in this process.
    reply = await layer.new_channel()
    accept_timeout = settings.SERVING_ACCEPT_TIMEOUT
    payload = {**payload, "expires_at": time.time() + accept_timeout}
    await asyncio.to_thread(_publish, task, payload, reply, accept_timeout)
    accepted = await _receive(layer, reply, accept_timeout)
    if accepted is None:
        raise InferenceUnavailable(
            f"No inference worker answered within {accept_timeout:g} s. Start one with "
            "`celery -A config worker -Q inference -P threads` (make run does), or retry later.")
    if accepted.get("type") == "inference.error":
        raise InferenceError(accepted.get("code", "internal"), accepted.get("message", "inference failed"))
    # Workers that predate the heartbeat name no worker: their callers wait for the idle timeout.
    return layer, reply, accepted.get("control"), accepted.get("worker")


async def stream_generation(request: GenerationRequest) -> AsyncGenerator[StreamEvent, None]:
    """Yield text as it is generated, then a final `done` event with the authoritative result.

    If the consumer stops early (client gone, Daphne cancelled the response), the worker is told
    to stop generating this row.
    """
    layer, reply, control, worker = await _dispatch(GENERATE_TASK, asdict(request))
    streamed, next_seq, in_order, finished = "", 0, True, False
    try:
        while True:
            message = await _next_message(layer, reply, worker, settings.SERVING_IDLE_TIMEOUT)
            if message is None:
                raise InferenceError("timeout", f"The inference worker went silent for "
                                                f"{settings.SERVING_IDLE_TIMEOUT:g} s.")
            kind = message.get("type")
            if kind == "inference.start":
                yield StreamEvent("start", info=message.get("info") or {})
            elif kind == "inference.chunk":
                # Chunks are numbered: after a gap (a chunk dropped on a full channel) stop streaming
                # and let the final text fill in the rest, so nothing is lost or duplicated.
                if in_order and message["seq"] == next_seq:
                    next_seq += 1
                    streamed += message["text"]
                    yield StreamEvent("text", message["text"])
                else:
                    in_order = False
            elif kind == "inference.done":
                finished = True
                result = message["result"]
                final = result.get("text", "")
                if final.startswith(streamed) and len(final) > len(streamed):
                    yield StreamEvent("text", final[len(streamed):])
                yield StreamEvent("done", info=result)
                return
            elif kind == "inference.error":
                finished = True
                raise InferenceError(message.get("code", "internal"), message.get("message", "inference failed"))
    finally:
        if not finished and control:
            await _cancel(layer, control, request.request_id)


async def _cancel(layer, control: str, request_id: str) -> None:
    try:
        # Shielded: we may be running inside a task Daphne just cancelled.
        await asyncio.shield(layer.send(control, {"type": "inference.cancel", "request_id": request_id}))
    except Exception:  # the worker notices nothing; the row runs to max_tokens — logged, not fatal
        logger.warning("could not tell the inference worker to stop request %s", request_id)


async def generate(request: GenerationRequest) -> dict:
    """Non-streaming: the final result (text, finish_reason, token counts)."""
    async for event in stream_generation(request):
        if event.kind == "done":
            return event.info or {}
    raise InferenceError("internal", "the worker ended without a result")


async def classify(request: ClassificationRequest) -> dict:
    return await _single_answer(CLASSIFY_TASK, asdict(request))


async def embed(request: EmbeddingRequest) -> dict:
    """{"vectors": float32 little-endian bytes, "dim", "prompt_tokens"}: see protocol.unpack_vectors."""
    return await _single_answer(EMBED_TASK, asdict(request))


async def call_worker(task: str, payload: dict) -> dict:
    """Any other worker task that answers once on the reply channel (e.g. knowledge retrieval)."""
    return await _single_answer(task, payload)


async def _single_answer(task: str, payload: dict) -> dict:
    layer, reply, _control, worker = await _dispatch(task, payload)
    while True:
        message = await _next_message(layer, reply, worker, settings.SERVING_IDLE_TIMEOUT)
        if message is None:
            raise InferenceError("timeout", "The inference worker did not answer.")
        if message.get("type") == "inference.error":
            raise InferenceError(message.get("code", "internal"), message.get("message", "inference failed"))
        if message.get("type") == "inference.done":
            return message["result"]
