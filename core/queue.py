"""Sending a Celery task by its registered name.

The web process never imports a tasks module: a task's body imports worker code (the training loop, the
engine), and tests/test_import_contract.py follows imports inside functions too. The name is the contract
(config/celery.py routes by it). Unit tests run Celery eagerly, where the task runs here, as .delay would.
"""

from __future__ import annotations

from importlib import import_module

from celery import current_app


def send_task(name: str, *args: object, countdown: float | None = None) -> None:
    if current_app.conf.task_always_eager:
        import_module(name.rpartition(".")[0])  # registers the task in this (test) process
        current_app.tasks[name].apply_async(args=list(args), countdown=countdown)
        return
    current_app.send_task(name, args=list(args), countdown=countdown)
