"""core/db_thread.py: threads whose database connections outlive a call, and when they are let go."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection, connections, transaction

from core import db_thread
from core.db_thread import DatabaseThreads, writer_threads

pytestmark = pytest.mark.django_db(transaction=True)


def _raw():
    """The thread's open DB-API connection (opening one if needed) and the thread's name."""
    connection.ensure_connection()
    return connection.connection, threading.current_thread().name


def _held():
    return connection.connection


def is_closed(raw) -> bool:
    """psycopg says so; sqlite3 refuses to run anything on a closed connection."""
    closed = getattr(raw, "closed", None)
    if closed is not None:
        return bool(closed)
    try:
        raw.execute("SELECT 1")
    except Exception:
        return True
    return False


@pytest.fixture
def threads():
    pool = DatabaseThreads("test-db", size=2)
    yield pool
    pool.close_connections()


def test_a_connection_outlives_a_call(threads):
    first, _ = asyncio.run(threads.run(_raw))
    second, _ = asyncio.run(threads.run(_raw))
    assert first is second
    assert not is_closed(first)


def test_a_call_that_leaves_autocommit_off_loses_its_connection(threads):
    def leave_autocommit_off():
        connection.ensure_connection()
        transaction.set_autocommit(False)
        return connection.connection

    raw = asyncio.run(threads.run(leave_autocommit_off))
    assert is_closed(raw)
    assert asyncio.run(threads.run(_held)) is None  # the next call starts without it


def test_an_error_that_broke_the_connection_drops_it(threads, monkeypatch):
    def fail_and_break():
        connection.ensure_connection()
        connection.errors_occurred = True
        monkeypatch.setattr(type(connections["default"]), "is_usable", lambda self: False)
        return connection.connection

    raw = asyncio.run(threads.run(fail_and_break))
    monkeypatch.undo()
    assert is_closed(raw)


def test_an_error_that_left_the_connection_working_keeps_it(threads):
    def fail_harmlessly():
        connection.ensure_connection()
        connection.errors_occurred = True
        return connection.connection

    raw = asyncio.run(threads.run(fail_harmlessly))
    assert not is_closed(raw)
    assert asyncio.run(threads.run(_held)) is raw


def test_an_idle_connection_is_checked_and_replaced_when_it_no_longer_works(monkeypatch):
    single = DatabaseThreads("test-db-idle", size=1)
    try:
        raw, _ = asyncio.run(single.run(_raw))
        monkeypatch.setattr(db_thread, "IDLE_CHECK_SECONDS", 0.0)
        monkeypatch.setattr(type(connections["default"]), "is_usable", lambda self: False)
        assert asyncio.run(single.run(_held)) is None  # closed before the call ran
        assert is_closed(raw)
    finally:
        monkeypatch.undo()
        single.close_connections()


def test_a_recently_used_connection_is_not_checked(monkeypatch):
    single = DatabaseThreads("test-db-busy", size=1)
    checks = []
    try:
        raw, _ = asyncio.run(single.run(_raw))
        monkeypatch.setattr(db_thread, "IDLE_CHECK_SECONDS", 60.0)
        monkeypatch.setattr(type(connections["default"]), "is_usable", lambda self: checks.append(1) or True)
        assert asyncio.run(single.run(_held)) is raw
        assert checks == []
    finally:
        monkeypatch.undo()
        single.close_connections()


def test_calls_at_once_go_to_different_threads(threads):
    release = threading.Event()

    def wait_for_release():
        assert release.wait(timeout=10)
        return threading.current_thread().name

    def other():
        release.set()
        return threading.current_thread().name

    async def both():
        first = asyncio.ensure_future(threads.run(wait_for_release))
        await asyncio.sleep(0)  # the first is handed to its thread before the second is chosen
        second = await threads.run(other)
        return await first, second

    first_thread, second_thread = asyncio.run(both())
    assert first_thread != second_thread  # with one thread the first would wait forever for the second


def test_close_connections_closes_every_threads_connection(threads):
    started = threading.Barrier(2, timeout=10)

    def open_and_wait():
        connection.ensure_connection()
        started.wait()  # both threads hold a connection at once
        return connection.connection

    async def both():
        return await asyncio.gather(threads.run(open_and_wait), threads.run(open_and_wait))

    raws = asyncio.run(both())
    assert raws[0] is not raws[1]
    threads.close_connections()
    assert all(is_closed(raw) for raw in raws)


def test_one_writer_thread_on_sqlite_as_many_as_wanted_elsewhere():
    assert writer_threads(4) == (1 if connection.vendor == "sqlite" else 4)
