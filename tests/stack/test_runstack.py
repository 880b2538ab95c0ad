"""`manage.py runstack`, the README's run command, exactly as a newcomer runs it."""

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import celery_client, start_stack, stop_stack

pytestmark = pytest.mark.live


def _processes_using(data_dir: Path) -> list[int]:
    marker = f"GPT_STORE_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_it_brings_up_the_whole_site_and_stops_it_cleanly_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "var"
    stack = start_stack(data_dir, str(data_dir / "db.sqlite3"))
    try:
        with urllib.request.urlopen(stack.url + "/", timeout=10) as response:
            page = response.read().decode()
        assert "SmolLM2 135M Instruct" in page and "all-MiniLM-L6-v2" in page
        with urllib.request.urlopen(stack.url + "/healthz", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok", "database": True, "redis": True}
        # both worker queues answer through the embedded Redis
        client = celery_client(stack.redis_url)
        for queue in ("training", "inference"):
            assert client.send_task("core.ping", args=[queue], queue=queue).get(timeout=30)["payload"] == queue
        log = stack.log()
        assert "admin@acme-shoes.example  password: " in log
        assert (data_dir / "redis.sock").exists()
        assert len(_processes_using(data_dir)) >= 5  # launcher, web, 2 workers, beat, redis
    finally:
        returncode = stop_stack(stack)
    assert _processes_using(data_dir) == []
    assert not (data_dir / "redis.sock").exists()
    assert "Embedded redis-server stopped." in stack.log()
    assert returncode in (0, 130)


def test_the_demo_logins_survive_a_restart(tmp_path):
    data_dir = tmp_path / "var"
    database = str(data_dir / "db.sqlite3")

    def password(log: str) -> str:
        return log.split("admin@acme-shoes.example  password: ")[1].split()[0]

    first = start_stack(data_dir, database)
    stop_stack(first)
    first_password = password(first.log())  # read now: the next start rewrites stack.log
    second = start_stack(data_dir, database)
    stop_stack(second)
    assert len(first_password) >= 12
    assert password(second.log()) == first_password
