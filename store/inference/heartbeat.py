"""Is the inference worker that took a request still alive?

Every inference worker process refreshes one Redis key every HEARTBEAT_SECONDS, with a TTL of
HEARTBEAT_TTL_SECONDS; its id travels on the `accepted` message of every request it takes. The web
side, waiting on a reply that has gone quiet, checks that key: when it is gone the worker died (the
OOM killer, a crash, kill -9) and the caller fails in seconds instead of waiting out
SERVING_IDLE_TIMEOUT (which still covers a worker that is alive but stuck).

The beat runs on its own thread, not the engine's: a worker busy loading a model still beats. A
clean shutdown leaves the key to expire: Celery's warm shutdown still finishes the requests in flight.
No torch here (the web process imports this module).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
# Several missed beats before a worker counts as dead: a beat may be late under load.
HEARTBEAT_TTL_SECONDS = 5.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def worker_key(worker_id: str) -> str:
    return f"serving:worker-alive:{worker_id}"


class Heartbeat:
    """Worker side: keeps `worker_key(worker_id)` alive while this process runs."""

    def __init__(self, worker_id: str, interval: float | None = None, ttl: float | None = None) -> None:
        import redis

        self.worker_id = worker_id
        self.interval = HEARTBEAT_SECONDS if interval is None else interval
        self.ttl = HEARTBEAT_TTL_SECONDS if ttl is None else ttl
        self.beats = 0
        self._client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=max(self.interval, 1.0))
        self._stopped = threading.Event()
        self._beaten = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self._beat()  # the key exists before the worker accepts anything
        self._thread = threading.Thread(target=self._run, name="serving-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (the key then expires, as when the process dies)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def wait_for_beats(self, count: int, timeout: float) -> bool:
        with self._beaten:
            return self._beaten.wait_for(lambda: self.beats >= count, timeout)

    def _run(self) -> None:
        failing = False
        while not self._stopped.wait(self.interval):
            try:
                self._beat()
            except Exception as error:  # Redis restarting: callers cannot hear from us either; keep trying
                if not failing:
                    logger.warning("inference worker heartbeat failed: %s", error)
                failing = True
            else:
                failing = False

    def _beat(self) -> None:
        self._client.set(worker_key(self.worker_id), "1", px=int(self.ttl * 1000))
        with self._beaten:
            self.beats += 1
            self._beaten.notify_all()


async def is_alive(worker_id: str) -> bool:
    """Web side: False once the worker's key has expired. An unreachable Redis says nothing either way."""
    import redis

    from core.redis_client import async_redis

    try:
        return bool(await async_redis().exists(worker_key(worker_id)))
    except redis.RedisError as error:
        logger.warning("cannot check inference worker %s: %s", worker_id, error)
        return True
