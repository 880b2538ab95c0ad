"""Checkpoints: cadence, contents, atomicity, and resuming to the very same weights."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workers.training.conftest import RecordingCallbacks, adapter_weights, assert_same_weights
from workers.training.loop import TrainingError, latest_checkpoint, run_training

REPO = Path(__file__).resolve().parents[3]


def test_it_checkpoints_every_n_steps_and_keeps_the_newest(make_spec):
    spec = make_spec(hyper={"batch_size": 2, "checkpoint_every_steps": 2, "keep_checkpoints": 2})
    callbacks = RecordingCallbacks()
    run_training(spec, callbacks)
    assert [step for step, _ in callbacks.checkpoints] == [2, 4, 6]
    assert sorted(p.name for p in spec.checkpoint_dir.iterdir()) == ["step-4", "step-6"]


def test_it_stores_weights_optimizer_scheduler_rng_and_loop_state_as_safetensors_and_json(make_spec):
    spec = make_spec(hyper={"batch_size": 2, "checkpoint_every_steps": 3, "eval_every_steps": 1,
                            "early_stopping_patience": 5})
    run_training(spec, RecordingCallbacks())
    folder = spec.checkpoint_dir / "step-3"
    assert sorted(p.name for p in folder.iterdir()) == [
        "best.safetensors", "complete.json", "model", "optimizer.safetensors", "rng.safetensors", "state.json",
        "trainable.safetensors"]
    # `model/` is the checkpoint as the engine serves it (ft:…:ckpt-step-3): a peft adapter folder
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (folder / "model").iterdir()}
    state = json.loads((folder / "state.json").read_text())
    assert state["loop"]["step"] == 3 and state["loop"]["cursor"] == 3 and state["loop"]["epoch"] == 0
    assert {"best_loss", "best_step", "evals_without_improvement", "loss_history"} <= set(state["loop"])
    assert len(state["loop"]["loss_history"]) == 3
    assert state["scheduler"]["last_epoch"] == 3
    assert set(state["rng"]) == {"python", "numpy"}
    assert state["optimizer"]["param_groups"][0]["lr"] > 0


def test_it_only_returns_complete_checkpoints(tmp_path):
    (tmp_path / "step-2").mkdir()
    (tmp_path / "step-2" / "complete.json").write_text("{}")
    (tmp_path / "step-9").mkdir()  # killed before its marker was written
    (tmp_path / ".step-10.partial").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step-2"
    assert latest_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("method", ["lora", "adalora", "prefix_tuning", "full"])
def test_it_resumes_to_the_same_weights_as_an_uninterrupted_run(make_spec, method):
    hyper = {"batch_size": 2, "lora_dropout": 0.3, "eval_every_steps": 2, "early_stopping_patience": 10}
    uninterrupted = run_training(make_spec(method=method, hyper=hyper), RecordingCallbacks())

    spec = make_spec(method=method, hyper=hyper)
    stopped = run_training(spec, RecordingCallbacks(stop_after={3: "shutdown"}))
    assert (stopped.status, stopped.final_step) == ("interrupted", 3)
    callbacks = RecordingCallbacks()
    resumed = run_training(spec, callbacks, resume_from=latest_checkpoint(spec.checkpoint_dir))

    assert (resumed.status, resumed.steps_run, resumed.final_step) == ("completed", 3, 6)
    assert [p.step for p in callbacks.progress] == [4, 5, 6]
    assert_same_weights(adapter_weights(resumed.adapter_dir), adapter_weights(uninterrupted.adapter_dir))
    assert resumed.metrics["training"]["loss_history"] == uninterrupted.metrics["training"]["loss_history"]


def test_it_resumes_after_the_process_is_killed(make_spec, tmp_path):
    hyper = {"batch_size": 2, "lora_dropout": 0.3, "checkpoint_every_steps": 2}
    spec = make_spec(hyper=hyper)
    description = tmp_path / "run.json"
    values = {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(spec).items()}
    description.write_text(json.dumps({"spec": values, "pause_seconds": 0.5}))
    env = {**os.environ, "GPT_STORE_DATA_DIR": str(tmp_path / "worker-data"),
           "DJANGO_SETTINGS_MODULE": "config.test_settings"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen([sys.executable, "-m", "tests.workers.training.crash_worker", str(description)],
                                  cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while latest_checkpoint(spec.checkpoint_dir) is None:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    checkpoint = latest_checkpoint(spec.checkpoint_dir)
    step = int(checkpoint.name.removeprefix("step-"))
    assert step < 6 and not spec.output_dir.exists()

    resumed = run_training(spec, RecordingCallbacks(), resume_from=checkpoint)
    uninterrupted = run_training(make_spec(hyper=hyper), RecordingCallbacks())
    assert resumed.steps_run == 6 - step
    assert_same_weights(adapter_weights(resumed.adapter_dir), adapter_weights(uninterrupted.adapter_dir))


def test_it_refuses_to_resume_a_checkpoint_written_for_other_settings(make_spec):
    spec = make_spec(hyper={"batch_size": 2})
    run_training(spec, RecordingCallbacks(stop_after={1: "shutdown"}))
    changed = dataclasses.replace(spec, hyper=dataclasses.replace(spec.hyper, learning_rate=1e-3))
    with pytest.raises(TrainingError, match="different data or settings"):
        run_training(changed, RecordingCallbacks(), resume_from=latest_checkpoint(spec.checkpoint_dir))


def test_it_never_unpickles_anything():
    sources = [path.read_text() for path in (REPO / "workers" / "training").glob("*.py")]
    assert sources
    forbidden = re.compile(r"torch\.load\(|import pickle|pickle\.|weights_only")
    assert not any(forbidden.search(source) for source in sources)
