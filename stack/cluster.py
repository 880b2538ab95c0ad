"""The production topology on one machine: several Daphne processes, several inference workers, the
training worker and beat, all under `manage.py runstack`, optionally behind nginx.

    cluster = Cluster(tmp / "cluster", database_url, redis_url)   # webs=2, inference_workers=2, ...
    cluster.start()                       # returns once every process answers (raises with the log)
    cluster.web_urls                      # ["http://127.0.0.1:41001", "http://127.0.0.1:41002"]
    cluster.url                           # nginx in front of them (or the first web with proxy=False)
    cluster.kill("inference1", signal.SIGKILL)   # runstack's supervisor starts it again
    cluster.stop()

Process names: web1..webN, inference1..inferenceN (Celery node names inference1@<host>...),
training (training1..N when there are several), beat, nginx. The database and Redis are the caller's
(stack.servers has throwaway ones): the processes share them, as production does, and runstack does
not start its embedded Redis because REDIS_URL is set. Used by tests/topology and bench/load.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from stack.servers import free_port, stop_process_group

REPO = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"
MARKER = "GPT_STORE_PROCESS"  # in each process's environment: which Procfile entry it is
WORKER_FLAGS = "-P threads --without-gossip --without-mingle -l INFO"
# torch's OpenMP threads in an inference worker spin this long (GOMP_SPINCOUNT, ~100,000 per ms: ~10 us)
# between operations before they sleep (docs/operations.md). Sleeping at once (OMP_WAIT_POLICY=PASSIVE)
# woke them ~200 times per forward: a question embedded in 16-19 ms against 9-12 ms. Spinning longer
# (10,000) or without end (ACTIVE) took the core Daphne needed: sentiment scoring of a message flood fell
# to 0.64-0.84x of direct calls against 0.99-1.05x. Training workers keep PASSIVE: their operations are long.
INFERENCE_SPIN = 1_000


class Cluster:
    def __init__(self, data_dir: Path | str, database_url: str, redis_url: str, webs: int = 2,
                 inference_workers: int = 2, training_workers: int = 1, beat: bool = True,
                 extra_env: dict[str, str] | None = None, proxy: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database_url, self.redis_url = database_url, redis_url
        self.host = socket.gethostname()
        self.web_ports = [free_port() for _ in range(webs)]
        self.web_urls = [f"http://127.0.0.1:{port}" for port in self.web_ports]
        self.proxy_port = free_port() if proxy else None
        self.url = f"http://127.0.0.1:{self.proxy_port}" if proxy else self.web_urls[0]
        self.inference_names = [f"inference{n}" for n in range(1, inference_workers + 1)]
        self.training_names = ["training"] if training_workers == 1 else \
            [f"training{n}" for n in range(1, training_workers + 1)]
        self.beat, self.proxy = beat, proxy
        self.static_root = self.data_dir / "static"
        self.log_path = self.data_dir / "cluster.log"
        self.procfile = self.data_dir / "Procfile"
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None  # how long start() took, up to every process answering
        self.env = self._environment(extra_env or {})

    def node(self, name: str) -> str:
        """The Celery node name of a worker process (`inference1` -> `inference1@<host>`)."""
        return f"{name}@{self.host}"

    @property
    def names(self) -> list[str]:
        return [f"web{n}" for n in range(1, len(self.web_ports) + 1)] + self.inference_names + \
            self.training_names + (["beat"] if self.beat else []) + (["nginx"] if self.proxy else [])

    # --- start and stop ---------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> Cluster:
        """Start every process and return once each web answers /healthz (through nginx too) and each
        worker answers a ping through the broker; on failure everything is stopped and the log raised."""
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.proxy:
            subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=REPO,
                           env=self.env, check=True, capture_output=True)
            self._write_nginx_config()
        self.procfile.write_text(self._procfile())
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it; closed when this process exits
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "manage.py", "runstack", "--procfile", str(self.procfile), "--skip-prepare",
             "--no-demo", "--port", str(self.web_ports[0])],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            self.wait_until_up(timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def wait_until_up(self, timeout: float = 180.0) -> None:
        """Until every web (and nginx) answers /healthz and every worker a ping; also after a fault drill."""
        deadline = time.monotonic() + timeout
        for url in self.web_urls + ([self.url] if self.proxy else []):
            self._wait(lambda url=url: healthy(url), deadline, f"{url}/healthz does not answer")
        workers = self.inference_names + self.training_names
        self._wait(lambda: not set(workers) - self.answering(workers), deadline,
                   f"workers {workers} do not all answer a ping")
        # And the task path: each queue's core.ping is taken and answered.
        app = self.celery()
        try:
            for queue in [queue for queue, names in (("inference", self.inference_names),
                                                     ("training", self.training_names)) if names]:
                app.send_task("core.ping", args=[queue], queue=queue).get(
                    timeout=max(5.0, deadline - time.monotonic()))
        finally:
            app.close()

    def stop(self, timeout: float = 60.0) -> int | None:
        """Ctrl-C for runstack (it stops every process), then SIGKILL for anything of ours still running."""
        if self.process is None:
            return None
        stop_process_group(self.process, timeout)
        for pid in self._pids():  # each Procfile process runs in its own session: not in runstack's group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proxy:  # found by its pid file, not its environment; SIGTERM lets it take its workers along
            with contextlib.suppress(LookupError, ProcessLookupError):
                os.kill(self.pid("nginx"), signal.SIGTERM)
        return self.process.returncode

    # --- processes ------------------------------------------------------------------------------

    def pid(self, name: str) -> int:
        """The pid of the running process `name` (its program, not the shell runstack starts it with)."""
        if name == "nginx":  # nginx overwrites its environment with its process title: it has a pid file
            pid_file = self.data_dir / "nginx" / "nginx.pid"
            if pid_file.exists() and Path(f"/proc/{pid_file.read_text().strip()}").exists():
                return int(pid_file.read_text())
            raise LookupError("nginx is not running")
        pids = self._pids(name)
        if not pids:
            raise LookupError(f"{name} is not running")
        return min(pids)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def celery(self):
        """A new Celery producer on this cluster's broker (not the caller's current app); close() it after.
        A new one each time: connections from before a Redis restart are not reused."""
        from celery import Celery

        from core.embedded_redis import celery_broker_url

        broker = celery_broker_url(self.redis_url)
        app = Celery("gptstore-cluster-client", broker=broker, backend=broker, set_as_current=False)
        app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
        return app

    def answering(self, names: list[str], timeout: float = 1.0) -> set[str]:
        """Which of the worker processes `names` answer a control ping addressed to their node name."""
        app = self.celery()
        try:
            replies = app.control.ping(destination=[self.node(name) for name in names], timeout=timeout)
        finally:
            app.close()
        nodes = {node for reply in replies for node in reply}
        return {name for name in names if self.node(name) in nodes}

    def tasks_served(self, name: str) -> dict[str, int]:
        """Tasks the worker process `name` has taken since it started, by task name (Celery's own count)."""
        node = self.node(name)
        app = self.celery()
        try:
            stats = app.control.inspect(destination=[node], timeout=2.0).stats() or {}
        finally:
            app.close()
        return dict(stats.get(node, {}).get("total", {}))

    # --- configuration --------------------------------------------------------------------------

    def _environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "GPT_STORE_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "GPT_STORE_DEMO": "0",
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        })
        if self.proxy:
            # nginx connects to Daphne from 127.0.0.1: its X-Forwarded-For is believed, nobody else's.
            env["TRUSTED_PROXIES"] = "127.0.0.1"
        env.update(extra)
        return env

    def _procfile(self) -> str:
        lines = [f"web{n}: {MARKER}=web{n} daphne -b 127.0.0.1 -p {port} config.asgi:application"
                 for n, port in enumerate(self.web_ports, start=1)]
        lines += [f"{name}: {MARKER}={name} GOMP_SPINCOUNT=${{GOMP_SPINCOUNT:-{INFERENCE_SPIN}}} "
                  f"celery -A config worker -Q inference -c ${{INFERENCE_CONCURRENCY:-16}} -n {name}@%h {WORKER_FLAGS}"
                  for name in self.inference_names]
        lines += [f"{name}: {MARKER}={name} OMP_WAIT_POLICY=${{OMP_WAIT_POLICY:-PASSIVE}} celery -A config worker "
                  f"-Q training -c 1 -n {name}@%h {WORKER_FLAGS}" for name in self.training_names]
        if self.beat:
            lines.append(f"beat: {MARKER}=beat celery -A config beat -s {self.data_dir}/celerybeat-schedule "
                         "-l WARNING")
        if self.proxy:
            lines.append(f"nginx: {MARKER}=nginx {NGINX} -p {self.data_dir}/nginx -c {self.data_dir}/nginx/nginx.conf "
                         "-g 'daemon off;'")
        return "\n".join(lines) + "\n"

    def _write_nginx_config(self) -> None:
        """deploy/nginx.conf, filled in, inside a minimal main configuration of this cluster's own."""
        prefix = self.data_dir / "nginx"
        prefix.mkdir(exist_ok=True)
        values = {"@WEB_SERVERS@": "\n    ".join(f"server 127.0.0.1:{port};" for port in self.web_ports),
                  "@LISTEN@": f"127.0.0.1:{self.proxy_port}", "@STATIC_ROOT@": str(self.static_root)}
        lines = []
        for line in NGINX_TEMPLATE.read_text().splitlines():
            if not line.lstrip().startswith("#"):  # the comments name the placeholders too
                for placeholder, value in values.items():
                    line = line.replace(placeholder, value)
            lines.append(line)
        (prefix / "gpt-store.conf").write_text("\n".join(lines) + "\n")
        temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root nginx's workers would switch to `nobody`, who cannot read a private data directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"{user}worker_processes 2;\npid {prefix}/nginx.pid;\nerror_log stderr warn;\n"
            f"events {{ worker_connections 4096; }}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n    access_log off;\n{temp}\n"
            f"    include {prefix}/gpt-store.conf;\n}}\n")

    def _pids(self, name: str | None = None) -> list[int]:
        """Processes of this cluster (by the marker and data directory in their environment), shells excluded."""
        wanted = [f"GPT_STORE_DATA_DIR={self.data_dir}".encode()]
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environment = set((entry / "environ").read_bytes().split(b"\0"))
                program = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if not all(item in environment for item in wanted) or program in (b"/bin/sh", b"sh", b""):
                continue
            markers = {item for item in environment if item.startswith(f"{MARKER}=".encode())}
            if markers and (name is None or f"{MARKER}={name}".encode() in markers):
                pids.append(int(entry.name))
        return pids

    def _wait(self, condition, deadline: float, problem: str) -> None:
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"runstack exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if condition():
                    return
            except Exception:  # noqa: S110 - not up yet (refused, broker not ready): ask again
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{problem}:\n{self.log()[-4000:]}")
            time.sleep(0.3)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own URL
            return response.status == 200
    except OSError:
        return False
