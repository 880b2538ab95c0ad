"""`make run`'s terminal: beat's routine ticks are dropped, everything else about tasks is kept."""

import io
import logging
import logging.config

import pytest
from celery.app.trace import LOG_FAILURE, LOG_RECEIVED, LOG_SUCCESS
from django.conf import settings

from core.log_filters import periodic_task_names


@pytest.fixture
def console():
    """The console handler exactly as settings.LOGGING builds it, writing to a buffer."""
    config = {**settings.LOGGING, "root": {"handlers": ["console"], "level": "DEBUG"},
              "loggers": {"celery": {"level": "DEBUG"}}}
    config["handlers"] = {"console": {**settings.LOGGING["handlers"]["console"], "stream": io.StringIO()}}
    before = logging.getLogger().handlers[:], logging.getLogger().level, logging.getLogger("celery").level
    logging.config.dictConfig(config)
    stream = logging.getLogger().handlers[0].stream
    yield stream
    root = logging.getLogger()
    root.handlers[:] = before[0]
    root.setLevel(before[1])
    logging.getLogger("celery").setLevel(before[2])


def _task_line(task: str) -> dict:
    return {"name": task, "id": "6f1c", "runtime": 0.005, "return_value": "0", "description": "raised unexpected",
            "exc": "OperationalError('database is locked')"}


def test_every_periodic_task_is_covered():
    assert periodic_task_names() == {"finetune.tasks.reap_stale_jobs", "knowledge.tasks.requeue_stalled_versions",
                                     "chat.tasks.sweep_unhandled_messages"}


def test_a_periodic_ticks_routine_lines_are_dropped(console):
    task = "chat.tasks.sweep_unhandled_messages"
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "sweep-unhandled-chat-messages",
                                          task)
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, _task_line(task))
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, _task_line(task))
    assert console.getvalue() == ""


def test_a_failing_tick_and_what_a_task_does_are_kept(console):
    task = "finetune.tasks.reap_stale_jobs"
    logging.getLogger("celery.app.trace").error(LOG_FAILURE, _task_line(task))
    logging.getLogger("finetune.jobs").warning("requeued stale fine-tuning jobs %s", [7])
    out = console.getvalue()
    assert f"Task {task}[6f1c] raised unexpected" in out
    assert "requeued stale fine-tuning jobs [7]" in out


def test_other_tasks_are_still_logged(console):
    task = "knowledge.tasks.embed_version"
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, _task_line(task))
    logging.getLogger("celery.app.trace").info(LOG_SUCCESS, _task_line(task))
    out = console.getvalue()
    assert f"Task {task}[6f1c] received" in out and f"Task {task}[6f1c] succeeded in 0.005s: 0" in out
