"""Fixtures every test shares.

- alice: admin (owner) of Alice Shoes; bob: her teammate (agent) in Alice Shoes;
  charlie: admin of Charlie Boots, an outsider to Alice's organization. Every feature gets its
  isolation test from these three.
- a redis-server for the whole session (rate limits use it): on a unix socket by default, on a
  loopback TCP port with TEST_REDIS=tcp (the transport production uses; scripts/test.sh sets it for
  the PostgreSQL run);
- `live_stack`: the real topology — `manage.py runstack` (Daphne, Celery training and inference
  workers, beat, embedded Redis) against the session's test database (the SQLite file or the PostgreSQL
  test database), started once per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import Client

from accounts import people
from accounts.models import Membership, Organization, Role
from core.embedded_redis import EmbeddedRedis
from stack.servers import TcpRedis, free_port, stop_process_group
from tests.teardown import retry_flush_after_deadlocks, wait_for_database_work_to_end, wait_until_workers_idle

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def pytest_configure(config):
    retry_flush_after_deadlocks()


def pytest_collection_modifyitems(config, items):
    # Live tests run last: the stack they start shares the SQLite file with later tests, and a
    # long-held test transaction would make the workers wait on the database lock.
    items.sort(key=lambda item: (item.get_closest_marker("browser") is not None,
                                 item.get_closest_marker("live") is not None))


def use_redis(url: str) -> None:
    """Point this process's settings and Celery app at `url` (settings read REDIS_URL before any fixture)."""
    from config.celery import app
    from core.embedded_redis import celery_broker_url

    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = celery_broker_url(url)
    app.conf.update(broker_url=celery_broker_url(url), result_backend=celery_broker_url(url))
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    server: EmbeddedRedis | TcpRedis
    if os.environ.get("TEST_REDIS", "unix") == "tcp":
        server = TcpRedis()
        use_redis(server.start())
    else:
        server = EmbeddedRedis(settings.EMBEDDED_REDIS_SOCKET)
        server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_redis(redis_server):
    """Each test starts with empty rate-limit buckets and presence: no test inherits another's flood."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _no_background_work_outlives_its_test(request):
    """The tests share one event loop: a bot reply a test started in the background (core.background) and
    did not wait for is cancelled when it ends, so it never reaches the next test's scripted bot."""
    if "_django_db_helper" in request.fixturenames:
        # Set up after the test database, so torn down (the work cancelled) before it is flushed: a reply
        # still writing would otherwise deadlock PostgreSQL's TRUNCATE.
        request.getfixturevalue("_django_db_helper")
    yield
    from core import background

    # Until none is left: a task being cancelled may start another (a reply's usage metering), and a
    # cancelled sync_to_async call still finishes its database work in its thread. Both must be over
    # before the test database is flushed, or PostgreSQL's TRUNCATE deadlocks with their row locks.
    for _ in range(10):  # rounds; a task that outlives all of them is a bug the next test will show
        # Only tasks of a loop that is not running: another thread's loop (core.broadcast) is not the test's.
        pending = [task for task in background._running
                   if not task.done() and not task.get_loop().is_running() and not task.get_loop().is_closed()]
        if not pending:
            break
        loop = pending[0].get_loop()
        mine = [task for task in pending if task.get_loop() is loop]
        for task in mine:
            task.cancel()
        loop.run_until_complete(asyncio.wait(mine, timeout=30))
    if "_django_db_helper" in request.fixturenames:
        wait_for_database_work_to_end()


@pytest.fixture(scope="session", autouse=True)
def _clean_data_dir():
    yield
    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)


@dataclass
class Person:
    user: object
    organization: Organization
    membership: Membership
    client: Client


def _person(email: str, org_name: str | None = None, join: Organization | None = None, role: str = Role.ADMIN):
    user = people.create_user(email, PASSWORD, email.split("@")[0].title())
    if join is None:
        organization = people.create_organization(org_name or "Org", user)
    else:
        organization = join
        Membership.objects.create(user=user, organization=organization, role=role)
    client = Client()
    client.force_login(user)
    membership = Membership.objects.get(user=user, organization=organization)
    return Person(user, organization, membership, client)


@pytest.fixture
def alice(db) -> Person:
    return _person("alice@alice-shoes.example", "Alice Shoes")


@pytest.fixture
def bob(alice) -> Person:
    return _person("bob@alice-shoes.example", join=alice.organization, role=Role.AGENT)


@pytest.fixture
def charlie(db) -> Person:
    return _person("charlie@charlie-boots.example", "Charlie Boots")


@pytest.fixture
def catalog(db):
    """The bundled base models, registered as `manage.py sync_catalog` does."""
    from store.catalog import sync_catalog
    from store.models import FoundationModel

    sync_catalog()
    return {model.slug: model for model in FoundationModel.objects.all()}


# --- the live stack -------------------------------------------------------------------------


@dataclass
class LiveStack:
    url: str
    port: int
    redis_url: str
    process: subprocess.Popen
    log_path: Path
    env: dict

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def session_database_url() -> str:
    """The URL of the database this test session runs on (SQLite file or PostgreSQL test database),
    for processes started by a test to share it."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    user = quote(database["USER"] or "", safe="")
    password = quote(database["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{database['PORT']}" if database["PORT"] else ""
    return f"postgres://{credentials}{database['HOST']}{port}/{quote(database['NAME'], safe='')}"


def stack_environment(data_dir: Path, database: str) -> dict:
    """`database`: a SQLite file path or a database URL."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GPT_STORE_DATA_DIR": str(data_dir),
        "DATABASE_URL": database if "://" in database else f"sqlite:///{database}",
        "GPT_STORE_MODEL_CACHE": str(settings.MODEL_CACHE_DIR),
        "GPT_STORE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "GPT_STORE_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TORCH_THREADS": "1",
        "INFERENCE_CONCURRENCY": "16",
        "SERVING_ACCEPT_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
        # The demo (training a sentiment model on first start) is tested on its own, not in every stack.
        "GPT_STORE_DEMO": "0",
        # Beat's periodic sweeps would act on other tests' rows in the shared test database (and deadlock
        # with their flush on PostgreSQL); the reapers and the chat sweeper are tested by calling them.
        "REAPER_INTERVAL_SECONDS": "86400",
        "CHAT_SWEEP_INTERVAL_SECONDS": "86400",
    })
    return env


def start_stack(data_dir: Path, database: str, extra_args: list[str] | None = None,
                extra_env: dict | None = None) -> LiveStack:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = stack_environment(data_dir, database) | (extra_env or {})
    log_path = data_dir / "stack.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--port", str(port), *(extra_args or [])],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    from core.embedded_redis import socket_path_for, url_for_socket

    # runstack starts its embedded Redis on the data directory's socket unless REDIS_URL names one.
    redis_url = env.get("REDIS_URL") or url_for_socket(socket_path_for(data_dir))
    stack = LiveStack(f"http://127.0.0.1:{port}", port, redis_url, process, log_path, env)
    try:
        wait_until_up(stack)
    except Exception:
        stop_stack(stack)
        raise
    return stack


def wait_until_up(stack: LiveStack, timeout: float = 180) -> None:
    """Up = Daphne answers /healthz and both worker queues answer a ping through the broker."""
    deadline = time.monotonic() + timeout
    while True:
        if stack.process.poll() is not None:
            raise RuntimeError(f"runstack exited early:\n{stack.log()[-4000:]}")
        try:
            with urllib.request.urlopen(stack.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Daphne did not come up:\n{stack.log()[-4000:]}")
        time.sleep(0.3)
    client = celery_client(stack.redis_url)
    for queue in ("training", "inference"):
        remaining = max(5.0, deadline - time.monotonic())
        client.send_task("core.ping", args=[queue], queue=queue).get(timeout=remaining)


def stop_stack(stack: LiveStack, timeout: float = 60) -> int:
    return stop_process_group(stack.process, timeout)


@pytest.fixture(scope="session")
def live_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    # With TEST_REDIS=tcp the stack's broker and channel layer also go over TCP, on a server of their own
    # (each unit test flushes the session's Redis).
    redis = TcpRedis() if os.environ.get("TEST_REDIS", "unix") == "tcp" else None
    extra_env = {"REDIS_URL": redis.start()} if redis is not None else None
    try:
        stack = start_stack(tmp_path_factory.mktemp("live-stack"), session_database_url(), ["--skip-prepare"],
                            extra_env=extra_env)
        yield stack
        stop_stack(stack)
    finally:
        if redis is not None:
            redis.stop()


@contextlib.contextmanager
def celery_broker(redis_url: str):
    """Point this process's Celery at a real broker (the unit tests' Celery is eager)."""
    from config.celery import app
    from core.embedded_redis import celery_broker_url

    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "result_backend")}

    def reset_connections() -> None:
        # Celery caches its connection and producer pools per app; drop them so the new URL is used.
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.update(task_always_eager=False, broker_url=celery_broker_url(redis_url),
                    result_backend=celery_broker_url(redis_url))
    reset_connections()
    try:
        yield app
    finally:
        app.conf.update(**saved)
        reset_connections()


@pytest.fixture
def live(live_stack, transactional_db):
    """A test that talks to the live stack: data it writes is committed, so workers see it, and tasks
    it queues go to the stack's workers."""
    with celery_broker(live_stack.redis_url):
        yield live_stack
    # Work the test started (a fine-tuning job it cancelled) ends before the test database is flushed.
    client = celery_client(live_stack.redis_url)
    try:
        wait_until_workers_idle(client, live_stack.redis_url)
    finally:
        client.close()


def celery_client(redis_url: str):
    """A Celery producer bound to the live stack's broker (the unit-test app is eager)."""
    from celery import Celery

    from core.embedded_redis import celery_broker_url

    # set_as_current=False: a new app would otherwise become the current app, and shared tasks sent by
    # this process (jobs, inference) would lose the real app's routes.
    app = Celery("gptstore-test-client", broker=celery_broker_url(redis_url), backend=celery_broker_url(redis_url),
                 set_as_current=False)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    return app


# --- tiny models ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_chat_folder(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture(scope="session")
def tiny_encoder_folder(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def tiny_chat_base(db, tiny_chat_folder):
    """The tiny chat model registered in the catalog, as import_model would."""
    from store.catalog import import_model

    return import_model(str(tiny_chat_folder), slug="tiny-chat", display_name="Tiny Chat")


@pytest.fixture
def tiny_encoder_base(db, tiny_encoder_folder):
    from store.catalog import import_model

    return import_model(str(tiny_encoder_folder), slug="tiny-encoder", display_name="Tiny Encoder")
