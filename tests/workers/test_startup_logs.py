"""A worker's log holds no progress bars (celery re-logs each frame as a WARNING)."""

import pytest
from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
from transformers.utils import logging as transformers_logging

from workers.startup import start_worker_services


@pytest.fixture
def restore_progress_bars():
    yield
    enable_progress_bars()
    transformers_logging.enable_progress_bar()


def test_a_started_worker_draws_no_loading_bar(restore_progress_bars, capsys):
    transformers_logging.enable_progress_bar()
    list(transformers_logging.tqdm(range(3), desc="Loading weights"))
    assert "Loading weights" in capsys.readouterr().err  # the bar a model load draws, before

    start_worker_services(sender=None)  # a worker consuming no queue: only the process-wide set-up

    list(transformers_logging.tqdm(range(3), desc="Loading weights"))
    assert capsys.readouterr().err == ""
    assert are_progress_bars_disabled()
