from celery import shared_task


# Not retried: a health check must report the failure, not hide it.
@shared_task(name="core.ping", acks_late=False, reject_on_worker_lost=False, max_retries=0)
def ping(payload: str = "pong") -> dict:
    """Health check: proves a worker consumes a queue through the broker and answers."""
    import os
    import socket

    return {"payload": payload, "pid": os.getpid(), "host": socket.gethostname()}
