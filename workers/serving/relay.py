"""The worker side of the streaming path: push engine output to a reply channel.

One long-lived event loop thread (core.broadcast.LoopThread) does every channel-layer send of the
process: calling async_to_sync per token from engine threads would open and close loops and
break channels_redis. Text is coalesced: the first piece leaves at once (time to first token),
later ones every COALESCE_SECONDS; only text waits for the window (the `start` that precedes the first
piece used to, which held the first token back up to 30 ms), and the final message cuts it short.
A full channel is retried briefly; a chunk that still cannot be sent is dropped (the web side sees
the gap in sequence numbers and takes the final text, which is authoritative), while the final
message is retried for longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from channels.exceptions import ChannelFull

from core.broadcast import LoopThread

logger = logging.getLogger(__name__)

COALESCE_SECONDS = 0.03
CHUNK_RETRIES = 5
FINAL_RETRY_SECONDS = 10.0


async def send_with_retry(layer, channel: str, message: dict, give_up_after: float) -> bool:
    delay, waited = 0.01, 0.0
    while True:
        try:
            await layer.send(channel, message)
            return True
        except ChannelFull:
            if waited >= give_up_after:
                return False
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.5)


class RelaySink:
    """Implements the engine's Sink for one request; safe to call from the engine thread."""

    def __init__(self, layer, reply_channel: str, request_id: str) -> None:
        self.layer, self.reply_channel, self.request_id = layer, reply_channel, request_id
        self.finished = threading.Event()
        self.result: dict | None = None
        self.error: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._start: dict | None = None
        self._final: dict | None = None
        self._loop = LoopThread.get()
        self._wakeup = asyncio.Event()
        self._finishing = asyncio.Event()
        self._loop.submit(self._sender())

    def _ring(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._wakeup.set)

    def _ring_final(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._finishing.set)
        self._ring()

    # --- engine thread ---
    def on_start(self, info: dict) -> None:
        with self._lock:
            self._start = {"type": "inference.start", "info": info}
        self._ring()

    def on_tokens(self, text: str, n_tokens: int) -> None:
        if text:
            with self._lock:
                self._pending.append(text)
            self._ring()

    def on_done(self, result: dict) -> None:
        self.result = result
        with self._lock:
            self._final = {"type": "inference.done", "result": result}
        self._ring_final()

    def on_error(self, code: str, message: str) -> None:
        self.error = (code, message)
        with self._lock:
            self._final = {"type": "inference.error", "code": code, "message": message}
        self._ring_final()

    # --- event loop thread ---
    async def _sender(self) -> None:
        seq = 0
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                with self._lock:
                    start, self._start = self._start, None
                    text, self._pending = "".join(self._pending), []
                    final = self._final
                if start is not None:
                    await send_with_retry(self.layer, self.reply_channel, start, 1.0)
                if text:
                    chunk = {"type": "inference.chunk", "seq": seq, "text": text}
                    seq += 1
                    if not await send_with_retry(self.layer, self.reply_channel, chunk, 0.01 * CHUNK_RETRIES):
                        logger.warning("reply channel full: dropped chunk %s of %s", seq - 1, self.request_id)
                if final is not None:
                    if not await send_with_retry(self.layer, self.reply_channel, final, FINAL_RETRY_SECONDS):
                        logger.error("could not deliver the result of %s", self.request_id)
                    return
                if text:
                    await self._coalesce()
        except Exception:
            logger.exception("relay for %s failed", self.request_id)
        finally:
            self.finished.set()

    async def _coalesce(self) -> None:
        """Let text gather for COALESCE_SECONDS after a chunk, unless the reply finishes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finishing.wait(), COALESCE_SECONDS)
