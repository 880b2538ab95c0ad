"""Every Celery task says whether a lost or failed run is retried (STYLE.md: explicit retries)."""

import inspect

import pytest

from config.celery import app

DECLARATIONS = ("acks_late", "reject_on_worker_lost", "max_retries")


def project_tasks() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_the_project_registers_its_tasks():
    assert {"finetune.tasks.merge_tuned_model", "finetune.tasks.run_finetune_job", "core.ping"} <= set(project_tasks())


@pytest.mark.parametrize("name", sorted(project_tasks()))
def test_it_declares_its_retry_policy(name):
    task = project_tasks()[name]
    # Written in the decorator itself: Celery copies acks_late and reject_on_worker_lost from its
    # settings onto every task class, so only the source tells a decision from a default.
    decorator = inspect.getsource(task.run).split("def ", 1)[0]
    missing = [option for option in DECLARATIONS if f"{option}=" not in decorator]
    assert not missing, f"{name} does not declare {missing}"
    if not task.acks_late:
        assert not task.reject_on_worker_lost, f"{name}: reject_on_worker_lost needs acks_late"
    if getattr(task, "autoretry_for", ()):
        assert task.max_retries, f"{name}: autoretry_for without max_retries"


def test_a_merge_is_redelivered_when_its_worker_dies():
    merge = project_tasks()["finetune.tasks.merge_tuned_model"]
    assert merge.acks_late and merge.reject_on_worker_lost and merge.max_retries
