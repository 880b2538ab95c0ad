"""The test database's flush is tried again when PostgreSQL killed it to end a deadlock (tests/teardown.py)."""

import pytest
from django.core.management.base import CommandError
from django.db import OperationalError

from tests.teardown import FLUSH_ATTEMPTS, retrying_deadlocks


def failing_flush(causes: list[Exception]):
    calls = []

    def flush(test_case) -> None:
        calls.append(test_case)
        if len(calls) <= len(causes):
            raise CommandError("Database test_gptstore couldn't be flushed.") from causes[len(calls) - 1]

    return flush, calls


def test_a_flush_killed_by_a_deadlock_waits_and_runs_again():
    deadlock = OperationalError("deadlock detected\nDETAIL:  Process 1 waits for AccessExclusiveLock")
    flush, calls = failing_flush([deadlock])
    waits = []
    retrying_deadlocks(flush, lambda: waits.append(len(calls)))("case")
    assert calls == ["case", "case"] and waits == [1]  # waited after the failure, before the second try


def test_a_flush_that_fails_otherwise_fails_at_once():
    flush, calls = failing_flush([OperationalError('relation "store_apikey" does not exist')])
    with pytest.raises(CommandError):
        retrying_deadlocks(flush, lambda: None)("case")
    assert len(calls) == 1


def test_a_flush_that_keeps_deadlocking_fails_after_its_last_attempt():
    flush, calls = failing_flush([OperationalError("deadlock detected")] * FLUSH_ATTEMPTS)
    with pytest.raises(CommandError):
        retrying_deadlocks(flush, lambda: None)("case")
    assert len(calls) == FLUSH_ATTEMPTS
