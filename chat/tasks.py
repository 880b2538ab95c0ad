"""Celery tasks of the chat (on the `inference` queue, config/celery.py): thin wrappers."""

from celery import shared_task

SWEEP_TIMEOUT = 600.0  # seconds: a sweep stuck longer is abandoned; its claims go stale and the next takes over


# Periodic: the next beat tick is its retry (a dead sweep's claims go stale and are taken over).
@shared_task(name="chat.tasks.sweep_unhandled_messages", ignore_result=True, acks_late=False,
             reject_on_worker_lost=False, max_retries=0)
def sweep_unhandled_messages() -> int:
    # On the worker's one long-lived event loop (core/broadcast.py): the pipeline's channel-layer
    # connections must outlive the task, which a fresh loop per call would not let them.
    from chat.sweeper import sweep
    from core.broadcast import LoopThread

    return LoopThread.get().submit(sweep()).result(timeout=SWEEP_TIMEOUT)
