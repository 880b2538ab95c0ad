from celery import shared_task


@shared_task(name="core.ping")
def ping(payload: str = "pong") -> dict:
    """Health check: proves a worker consumes a queue through the broker and answers."""
    import os
    import socket

    return {"payload": payload, "pid": os.getpid(), "host": socket.gethostname()}
