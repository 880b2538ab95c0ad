"""Daphne from a web-only install (no torch) serving real traffic, with an inference worker from .venv.

    .venv/bin/python scripts/web_only_check.py var/venv-web      (scripts/web-only.sh builds var/venv-web)

Everything the web does runs in the web-only environment: migrations, catalog sync, the organization, key,
deployment and widget (through `manage.py shell`), Daphne and beat. Only the tiny chat model's weights are built
here (torch), and the inference worker runs from .venv, as a GPU machine's would. Checked: a page, a real
/v1 chat completion decoded by the worker, a widget conversation over the WebSocket, and beat running. Prints one line
of figures and exits non-zero, with the processes' logs, on the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stack.servers import TcpRedis, free_port  # noqa: E402
from tests.tiny_models import build_tiny_chat_model  # noqa: E402

SETUP = """
import json
from accounts import people
from chat.widgets import create_widget
from store import deploy
from store.api_keys import create_api_key
from store.catalog import import_model

owner = people.create_user("owner@web-only.example", "a-long-test-passphrase")
organization = people.create_organization("Web Only Shoes", owner)
base = import_model({folder!r}, slug="tiny-chat")
bot = deploy.create_or_update(organization, "tiny-bot", deploy.ModelChoice(base=base),
                              system_prompt="You are a test bot.", temperature=0.0, max_tokens=8)
widget = create_widget(organization, bot, None, [], title="Web-only help")
print(json.dumps({{"key": create_api_key(organization, "check")[1], "widget": widget.public_key}}))
"""


def request(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, or a JSON POST when there is a body."""
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers or {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=sent), timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def widget_conversation(url: str, widget_key: str, text: str, timeout: float = 60) -> list[dict]:
    """A visitor's tab, as static/chat/frame.js does it: a session, the socket, a message; frames up to the
    bot's stored reply."""
    from websockets.sync.client import connect
    from websockets.typing import Origin

    status, _, body = request(f"{url}/chat/widget/{widget_key}/session", {})
    assert status == 200, body[:300]
    token = json.loads(body)["token"]
    frames: list[dict] = []
    with connect(f"{url.replace('http', 'ws', 1)}/ws/chat/widget/?token={token}", origin=Origin(url),
                 open_timeout=15, proxy=None) as socket:
        socket.send(json.dumps({"type": "message", "text": text, "client_id": "web-only-1"}))
        deadline = time.monotonic() + timeout
        while not any(frame["type"] == "message" and frame["message"]["author"] == "bot" for frame in frames):
            frames.append(json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic()))))
            assert frames[-1]["type"] != "error", frames
    return frames


class Check:
    def __init__(self, web_venv: Path, work: Path) -> None:
        self.web_python = web_venv.resolve() / "bin" / "python"
        self.work = work
        self.processes: dict[str, subprocess.Popen] = {}
        self.redis = TcpRedis()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "GPT_STORE_DATA_DIR": str(work),
            "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{work / 'db.sqlite3'}",
            "GPT_STORE_DEMO": "0", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "SERVING_ACCEPT_TIMEOUT": "30"}
        self.env.pop("VIRTUAL_ENV", None)

    def web(self, *argv: str) -> str:
        """A command in the web-only environment, from the checkout (as the web processes run)."""
        done = subprocess.run([str(self.web_python), *argv], cwd=REPO, env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed in the web-only environment:\n{done.stderr[-4000:]}")
        return done.stdout

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        log.close()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.redis.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.work.glob("*.log")))

    def wait(self, what: str, condition, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.3)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def worker_answers(self) -> bool:
        from celery import Celery

        from core.embedded_redis import celery_broker_url

        app = Celery(broker=celery_broker_url(self.env["REDIS_URL"]), backend=celery_broker_url(self.env["REDIS_URL"]))
        try:
            return app.send_task("core.ping", args=["inference"], queue="inference").get(timeout=5) is not None
        except Exception:
            return False

    def run(self) -> dict:
        figures: dict[str, float] = {}
        started = time.monotonic()
        self.env["REDIS_URL"] = self.redis.start()
        self.web("manage.py", "migrate", "--noinput", "-v", "0")
        self.start("inference", [str(REPO / ".venv/bin/celery"), "-A", "config", "worker", "-Q", "inference",
                                 "-P", "threads", "-c", "4", "-n", "inference@web-only", "--without-gossip",
                                 "--without-mingle", "-l", "WARNING"])
        self.start("daphne", [str(self.web_python.parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                              "config.asgi:application"])
        # Beat runs on a web machine too: it must start without torch (its tasks run on the inference queue).
        self.start("beat", [str(self.web_python.parent / "celery"), "-A", "config", "beat", "-s",
                            str(self.work / "celerybeat-schedule"), "-l", "INFO"])
        # The data is made while the processes start (the worker's engine takes the longest).
        self.web("manage.py", "sync_catalog")
        folder = build_tiny_chat_model(self.work / "tiny-chat", seed=3)
        created = json.loads(self.web("manage.py", "shell", "-c", SETUP.format(folder=str(folder))).splitlines()[-1])
        self.wait("Daphne's /healthz", self.healthy)
        self.wait("the inference worker", self.worker_answers)
        figures["up_s"] = round(time.monotonic() - started, 1)

        mark = time.monotonic()
        status, content_type, body = request(self.url + "/")
        assert status == 200 and content_type.startswith("text/html"), (status, body[:300])

        status, _, body = request(self.url + "/v1/chat/completions", {
            "model": "tiny-bot", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4},
            {"Authorization": f"Bearer {created['key']}"})
        assert status == 200, body[:500]
        completion = json.loads(body)
        assert completion["usage"]["completion_tokens"] > 0, completion
        assert isinstance(completion["choices"][0]["message"]["content"], str), completion
        figures["page_and_v1_s"], mark = round(time.monotonic() - mark, 1), time.monotonic()

        frames = widget_conversation(self.url, created["widget"], "Where is my parcel?")
        kinds = [frame["type"] for frame in frames]
        assert kinds[0] == "hello" and "ack" in kinds, kinds
        figures["widget_s"] = round(time.monotonic() - mark, 1)
        beat_log = (self.work / "beat.log").read_text(errors="replace")
        assert self.processes["beat"].poll() is None and "beat: Starting" in beat_log, beat_log[-2000:]
        figures["total_s"] = round(time.monotonic() - started, 1)
        return figures


def main() -> int:
    web_venv = Path(sys.argv[1] if len(sys.argv) > 1 else "var/venv-web")
    with tempfile.TemporaryDirectory(prefix="gptstore-web-only-") as work:
        check = Check(web_venv, Path(work))
        try:
            figures = check.run()
        except BaseException as error:
            print(f"web-only check FAILED: {error}\n{check.logs()}", file=sys.stderr)
            return 1
        finally:
            check.stop()
    print(json.dumps({"check": "web-only install", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
