"""What `make run`'s terminal shows: the site's work, not beat's housekeeping ticks.

Beat queues three periodic tasks (settings.CELERY_BEAT_SCHEDULE), one of them every 10 s; at INFO each
tick is three lines (sent, received, succeeded), ~1,000 lines an hour that bury the lines an operator
looks for. The tasks log on their own when they do something ("requeued stale fine-tuning jobs …",
"answered … message(s) … left by a process that stopped"), and a failing tick logs at ERROR, which
passes: only celery's routine INFO lines about those tasks are dropped.
"""

from __future__ import annotations

import logging

from django.conf import settings


def periodic_task_names() -> set[str]:
    """The tasks beat queues, as celery names them in its log lines."""
    return {str(entry["task"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()}


class QuietHousekeeping(logging.Filter):
    """Drops celery's INFO (and lower) records that name a periodic task."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._tasks: set[str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not record.name.startswith("celery"):
            return True
        if self._tasks is None:  # settings are read on first use: the filter is built while they load
            self._tasks = periodic_task_names()
        message = record.getMessage()
        return not any(task in message for task in self._tasks)
