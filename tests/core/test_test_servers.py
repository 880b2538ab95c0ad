"""The servers a test session runs on are the ones scripts/test.sh asks for: with TEST_REDIS=tcp every
Redis client of the process (settings, Celery) talks to a redis-server over loopback TCP, so the
PostgreSQL run exercises the transport production uses and not the embedded unix socket."""

import os
import urllib.request

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app
from core.embedded_redis import celery_broker_url
from tests.conftest import celery_client, session_database_url


def test_the_session_redis_uses_the_transport_test_redis_names(redis_server):
    url = settings.REDIS_URL
    if os.environ.get("TEST_REDIS") == "tcp":
        assert url == f"redis://127.0.0.1:{redis_server.port}/0"
    else:
        assert url.startswith("unix://")
    assert app.conf.broker_url == celery_broker_url(url) == app.conf.result_backend
    client = redis.Redis.from_url(url)
    client.set("transport-check", "here")
    assert client.get("transport-check") == b"here"
    # The server this client reached is the one the fixture started (not some other Redis on the machine).
    assert client.config_get("port")["port"] == str(getattr(redis_server, "port", 0))
    client.close()


def test_processes_started_by_a_test_are_given_the_session_database(db):
    url = session_database_url()
    if connection.vendor == "postgresql":
        assert url.startswith("postgres://") and url.endswith("/" + connection.settings_dict["NAME"])
    else:
        assert url == f"sqlite:///{connection.settings_dict['NAME']}"


@pytest.mark.live
def test_the_live_stack_talks_to_its_redis_over_the_same_transport(live):
    if os.environ.get("TEST_REDIS") == "tcp":
        assert live.redis_url.startswith("redis://127.0.0.1:") and live.env["REDIS_URL"] == live.redis_url
    else:
        assert live.redis_url.startswith("unix://")
    # The workers answer through that broker, and Daphne reaches that Redis.
    celery_client(live.redis_url).send_task("core.ping", args=["inference"], queue="inference").get(timeout=60)
    with urllib.request.urlopen(live.url + "/healthz", timeout=10) as response:
        assert response.status == 200
