"""Ending a test that wrote to the shared test database, so the flush after it cannot deadlock.

A transactional test's database is emptied by a TRUNCATE. On PostgreSQL a TRUNCATE that starts while
another session holds row locks on those tables deadlocks with it, and PostgreSQL kills one of the two:
when it kills the flush, the test errors and the next one finds the last one's rows. The writers that
can still be at work when a test ends, and how each is waited for:

- this process's threads: a cancelled `sync_to_async` call returns at once while its thread goes on
  writing (`wait_for_database_work_to_end`);
- the live stack's Celery workers: a fine-tuning job a test started and cancelled stops at its next step,
  not at once (`wait_until_workers_idle`);
- anything else, e.g. a Daphne consumer of the live stack finishing a socket the test closed: the
  flush is tried again after such a deadlock (`retry_flush_after_deadlocks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

FLUSH_ATTEMPTS = 3


def wait_for_database_work_to_end(deadline_seconds: float = 30.0) -> None:
    """Every single-threaded executor such work runs on runs a no-op queued behind it, and on PostgreSQL
    no other session of the test database is inside a statement or a transaction."""
    from asgiref.sync import SyncToAsync
    from django.db import connection

    from chat.consumers import WIDGET_DB

    WIDGET_DB.close_connections(timeout=deadline_seconds)  # after the stores queued before; no session kept open
    SyncToAsync.single_thread_executor.submit(lambda: None).result(timeout=deadline_seconds)
    if connection.vendor != "postgresql":
        return
    ends = time.monotonic() + deadline_seconds
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT pid, state, left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'")
            busy = cursor.fetchall()
            if not busy:
                return
            if time.monotonic() > ends:
                raise AssertionError(f"other sessions still using the test database after the test: {busy}")
            time.sleep(0.05)


_worker_nodes: dict[str, list[str]] = {}


def wait_until_workers_idle(app, redis_url: str, deadline_seconds: float = 120.0) -> None:
    """Until no worker of the stack on `redis_url` runs or holds a task (`app`: a Celery client on its
    broker). The workers are found once per stack (a ping waits out its whole timeout); after that each
    check returns as soon as every one of them has answered."""
    if redis_url not in _worker_nodes:
        _worker_nodes[redis_url] = sorted(node for reply in app.control.ping(timeout=1.0) for node in reply)
    nodes = _worker_nodes[redis_url]
    if not nodes:
        return
    ends = time.monotonic() + deadline_seconds
    while True:
        inspector = app.control.inspect(destination=nodes, timeout=2.0, limit=len(nodes))
        busy = [f"{node}: {task.get('name')}" for listing in (inspector.active(), inspector.reserved())
                for node, tasks in (listing or {}).items() for task in tasks]
        if not busy:
            return
        if time.monotonic() > ends:
            raise AssertionError(f"the live stack's workers are still busy after the test: {busy}")
        time.sleep(0.2)


def retry_flush_after_deadlocks() -> None:
    """Make the test database's flush wait for other work and try again when PostgreSQL picked it as a
    deadlock's victim (the other writer's transaction has then ended or been killed)."""
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]
    if not getattr(flush, "retries_deadlocks", False):
        TransactionTestCase._fixture_teardown = retrying_deadlocks(  # type: ignore[attr-defined]
            flush, wait_for_database_work_to_end)

def retrying_deadlocks(flush, wait: Callable[[], None]):
    """`flush`, tried again after `wait` when it failed on a deadlock. A flush that fails for another
    reason, or on its last attempt, still fails the test."""
    from django.core.management.base import CommandError

    def fixture_teardown(self) -> None:
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                return flush(self)
            except CommandError as error:
                if attempt == FLUSH_ATTEMPTS or "deadlock detected" not in str(error.__cause__):
                    raise
                wait()

    fixture_teardown.retries_deadlocks = True  # type: ignore[attr-defined]
    return fixture_teardown
