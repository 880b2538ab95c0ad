"""Start and stop a GPT Store stack for a benchmark (`manage.py runstack` in a temporary data dir).

Benchmarks measure the real topology: Daphne, the Celery workers and an embedded redis-server, each
in its own process, exactly as `make run` starts them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from stack.servers import free_port

REPO = Path(__file__).resolve().parent.parent


def bench_environment(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "GPT_STORE_DATA_DIR": str(data_dir),
        "GPT_STORE_MODEL_CACHE": os.environ.get("GPT_STORE_MODEL_CACHE",
                                                str(Path.home() / ".cache" / "gpt-store" / "models")),
        "GPT_STORE_DEMO": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING", "DEBUG": "0", "SECRET_KEY": "benchmark-" + "x" * 40,
        **extra,
    })
    return env


def setup_django(data_dir: Path) -> None:
    """Configure this process like the stack (same data dir, same database file)."""
    os.environ.update(bench_environment(data_dir))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("sync_catalog", verbosity=0)
    # Benchmarks train their models before the stack (and its Redis) starts: nobody listens for the
    # training's progress announcements yet, so their "could not notify" warnings are only noise.
    logging.getLogger("core.broadcast").setLevel(logging.ERROR)


class Stack:
    def __init__(self, data_dir: Path, **extra_env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = bench_environment(data_dir, **extra_env)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Stack:
        log = open(self.data_dir / "stack.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(self.port), "--skip-prepare"], cwd=REPO,
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError((self.data_dir / "stack.log").read_text()[-3000:])
        return self

    def celery(self):
        from celery import Celery

        from core.embedded_redis import celery_broker_url, socket_path_for, url_for_socket

        url = celery_broker_url(url_for_socket(socket_path_for(self.data_dir)))
        return Celery("bench", broker=url, backend=url, set_as_current=False)

    def wait_for_worker(self, queue: str = "inference", timeout: float = 120) -> None:
        self.celery().send_task("core.ping", args=[queue], queue=queue).get(timeout=timeout)

    def worker_pid(self, name: str) -> int | None:
        """The pid of a Procfile process, found by its Celery node name in /proc."""
        return next(stack_pids(f"-n {name}@", self.data_dir), None)

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def stack_pids(command_part: str, data_dir: Path) -> Iterator[int]:
    """Pids of the processes of the stack on data_dir whose command line contains command_part."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if command_part in cmdline and f"GPT_STORE_DATA_DIR={data_dir}".encode() in environ:
                yield int(entry.name)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def temporary_data_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
