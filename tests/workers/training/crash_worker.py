"""Runs one training described by a JSON file; the crash test SIGKILLs it mid-run.

    python -m tests.workers.training.crash_worker description.json

Each optimizer step pauses `pause_seconds` so the test can kill it between checkpoints.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


class PausingCallbacks:
    def __init__(self, pause_seconds: float):
        self.pause_seconds = pause_seconds

    def on_progress(self, progress) -> None:
        time.sleep(self.pause_seconds)

    def on_event(self, level, message, data=None) -> None:
        print(level, message, flush=True)

    def on_evaluation(self, step, metrics) -> None:
        pass

    def on_checkpoint(self, step, path) -> None:
        print("checkpoint", step, flush=True)

    def should_stop(self):
        return None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    import torch

    from finetune.spec import Hyperparameters, TrainingSpec
    from workers.training.loop import run_training

    torch.set_num_threads(1)
    description = json.loads(Path(sys.argv[1]).read_text())
    values = description["spec"]
    spec = TrainingSpec(**{**values, "hyper": Hyperparameters.from_dict(values["hyper"]),
                           **{key: Path(values[key]) for key in ("base_folder", "output_dir", "checkpoint_dir")}})
    run_training(spec, PausingCallbacks(description["pause_seconds"]))


if __name__ == "__main__":
    main()
