"""One multi-process cluster for every topology test (stack.cluster.Cluster): two Daphne processes, two
inference workers, the training worker and beat under runstack, nginx in front, on PostgreSQL and a
redis-server over TCP of its own.

The tests write their data through this process's ORM into the database the cluster uses: in the
PostgreSQL run (scripts/test.sh's second) that is the session's test database; run on their own with
SQLite settings, the session's database *becomes* a throwaway PostgreSQL (pytest-django's documented
way: override `django_db_setup`), which is why these tests refuse to share a SQLite session with others.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from stack.cluster import Cluster
from stack.servers import TcpRedis, ThrowawayPostgres
from tests.conftest import celery_broker, session_database_url

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "artifacts"


@pytest.fixture(scope="session")
def django_db_setup(request, django_db_blocker):
    """PostgreSQL for this session: the session's own, or a throwaway one in place of SQLite."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        request.getfixturevalue("django_db_setup")  # pytest-django's: the PostgreSQL test database
        yield None
        return
    others = [item.nodeid for item in request.session.items if Path(str(item.fspath)).resolve().parent != HERE]
    if others:
        pytest.skip("the topology tests run on PostgreSQL: run tests/topology on its own (it starts a PostgreSQL "
                    "server) or in the PostgreSQL run (scripts/test.sh)")
    from django.core.management import call_command
    from django.db import connections

    from core.env import parse_database_url

    server = ThrowawayPostgres()
    database = settings.DATABASES["default"]
    saved = dict(database)
    try:
        connections.close_all()
        database.update(parse_database_url(server.start()))
        for alias in list(connections):  # connections made for SQLite must not be reused
            with contextlib.suppress(AttributeError):
                del connections[alias]
        with django_db_blocker.unblock():
            call_command("migrate", interactive=False, verbosity=0)
        yield server
    finally:
        connections.close_all()
        database.clear()
        database.update(saved)
        server.stop()


@pytest.fixture(scope="package")
def postgres_server(django_db_setup):
    """The PostgreSQL server the cluster runs on, to stop and start it (an outage drill)."""
    if django_db_setup is not None:
        return django_db_setup
    server = ThrowawayPostgres.attach(session_database_url())
    if server.data_dir is None or not (server.data_dir / "postmaster.opts").exists():
        pytest.skip("the session's PostgreSQL runs elsewhere: this machine cannot stop and start it")
    return server


@pytest.fixture(scope="session")
def chatty_folder(tmp_path_factory) -> Path:
    """A tiny chat model that never says end-of-turn: a reply lasts exactly max_tokens."""
    from tests.tiny_models import build_tiny_chat_model, silence_end_of_turn

    folder = silence_end_of_turn(build_tiny_chat_model(tmp_path_factory.mktemp("topology-model"), seed=3, layers=8))
    # Rotary positions: a longer context needs no new weights, and a 2000-token reply is still going
    # when a worker is killed under it.
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    return folder


@pytest.fixture(scope="package")
def cluster_redis():
    server = TcpRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def cluster(django_db_setup, cluster_redis, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), session_database_url(), cluster_redis.url, extra_env={
        # The same key as this process: sessions it creates (force_login) are valid on the cluster.
        "SECRET_KEY": settings.SECRET_KEY,
        "GPT_STORE_MODEL_CACHE": str(settings.MODEL_CACHE_DIR),
        "GPT_STORE_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "GPT_STORE_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
        "TORCH_THREADS": "1",
        "INFERENCE_CONCURRENCY": "8",
        # The shared test database: no periodic sweeps over other tests' rows (tests/conftest.py).
        "REAPER_INTERVAL_SECONDS": "86400",
        "CHAT_SWEEP_INTERVAL_SECONDS": "86400",
        "SERVING_ACCEPT_TIMEOUT": "10",
    })
    try:
        cluster.start(timeout=240)
        print(f"\ncluster up in {cluster.start_seconds:.1f} s")  # seen with -s: docs/reliability.md quotes it
        yield cluster
    finally:
        cluster.stop()
        # Kept for CI's artifacts (pytest's own temporary directories rotate away).
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(cluster.log_path, ARTIFACTS / "topology-cluster.log")


@pytest.fixture
def topo(cluster, transactional_db):
    """A test on the cluster: what it writes is committed, and tasks it sends go to the cluster's broker."""
    with celery_broker(cluster.redis_url):
        yield cluster


@pytest.fixture
def shop(topo, chatty_folder):
    """An organization with an API key, the chatty bot deployed (short replies) and a widget for it."""
    from chat.widgets import create_widget
    from store.catalog import import_model
    from tests.factories import deploy_tiny_bot, organization_with_key

    organization, owner, key = organization_with_key("Topology Shoes", requests_per_minute=600)
    bot = deploy_tiny_bot(organization, import_model(str(chatty_folder), slug="chatty"), slug="chatty-bot",
                          max_tokens=6)
    widget = create_widget(organization, bot, None, [], title="Topology help")
    return {"organization": organization, "owner": owner, "key": key, "bot": bot, "widget": widget}
