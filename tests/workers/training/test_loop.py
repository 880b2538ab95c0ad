"""The loop: learning, determinism, progress, stopping, errors and early stopping."""

from __future__ import annotations

import json

import pytest
import torch

from tests.workers.training.conftest import RecordingCallbacks, adapter_weights, assert_same_weights, chat
from workers.training.loop import TrainingError, run_training


def test_it_decreases_the_loss_on_a_small_repetitive_dataset(make_spec):
    rows = [chat("Where is my order?", "It ships within two business days."),
            chat("Can I return shoes?", "Yes, within 30 days.")] * 4
    spec = make_spec(method="full", hyper={"epochs": 8, "learning_rate": 1e-2}, train_rows=rows,
                     validation_rows=rows[:2])
    callbacks = RecordingCallbacks()
    run_training(spec, callbacks)
    assert callbacks.losses[-1] < 0.6 * callbacks.losses[0]
    validation = [metrics["validation_loss"] for _, metrics in callbacks.evaluations]
    assert validation == sorted(validation, reverse=True)


def test_it_gives_identical_metrics_and_weights_for_the_same_seed(make_spec):
    def run():
        spec = make_spec(hyper={"lora_dropout": 0.2, "epochs": 2}, final_evaluation=True)
        result = run_training(spec, RecordingCallbacks())
        for timing in ("tokens_per_second", "elapsed_seconds"):
            result.metrics["training"].pop(timing)
        return result.metrics, adapter_weights(result.adapter_dir)

    (first_metrics, first_weights), (second_metrics, second_weights) = run(), run()
    assert first_metrics == second_metrics
    assert all(torch.equal(first_weights[name], second_weights[name]) for name in first_weights)


def test_it_reports_progress_after_every_optimizer_step(make_spec):
    from workers.models.loading import load_tokenizer
    from workers.training.data import encode_dialogue

    spec = make_spec(hyper={"epochs": 2, "batch_size": 4, "gradient_accumulation": 2})
    callbacks = RecordingCallbacks()
    run_training(spec, callbacks)
    encoded, _ = encode_dialogue(load_tokenizer(spec.base_folder), spec.train_rows, 128)
    steps = [p.step for p in callbacks.progress]
    assert steps == [1, 2, 3, 4]  # 12 rows = 3 batches of 4 = 2 steps per epoch
    assert [p.epoch for p in callbacks.progress] == [0.5, 1.0, 1.5, 2.0]
    assert callbacks.progress[-1].real_tokens_seen == 2 * sum(row.length for row in encoded)
    assert all(p.tokens_per_second > 0 and p.learning_rate > 0 and p.total_steps == 4 for p in callbacks.progress)
    assert callbacks.progress[-1].eta_seconds == 0


def test_it_returns_a_json_serialisable_report(make_spec):
    result = run_training(make_spec(final_evaluation=True), RecordingCallbacks())
    report = json.loads(json.dumps(result.metrics, allow_nan=False))
    assert {"task", "tuned", "baselines", "samples", "training", "split"} <= set(report)


def test_it_cancels_within_one_step_without_writing_a_checkpoint(make_spec):
    spec = make_spec(hyper={"batch_size": 2, "checkpoint_every_steps": 2})
    callbacks = RecordingCallbacks(stop_after={1: "cancel"})
    result = run_training(spec, callbacks)
    assert (result.status, result.steps_run, result.final_step, result.adapter_dir) == ("cancelled", 1, 1, None)
    assert callbacks.checkpoints == []
    assert not spec.output_dir.exists()


def test_it_writes_a_checkpoint_on_shutdown_then_stops(make_spec):
    from workers.training.loop import latest_checkpoint

    spec = make_spec(hyper={"batch_size": 2})
    callbacks = RecordingCallbacks(stop_after={2: "shutdown"})
    result = run_training(spec, callbacks)
    assert (result.status, result.final_step, result.adapter_dir) == ("interrupted", 2, None)
    assert [step for step, _ in callbacks.checkpoints] == [2]
    assert latest_checkpoint(spec.checkpoint_dir) == spec.checkpoint_dir / "step-2"


def test_it_turns_out_of_memory_into_a_readable_training_error(make_spec, monkeypatch):
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(LlamaDecoderLayer, "forward", exhausted)
    with pytest.raises(TrainingError, match="Out of memory .* Lower the batch size"):
        run_training(make_spec(), RecordingCallbacks())


def test_it_refuses_an_empty_training_set(make_spec):
    with pytest.raises(TrainingError, match="training set is empty"):
        run_training(make_spec(train_rows=[]), RecordingCallbacks())


def test_it_refuses_invalid_settings_with_the_form_errors(make_spec):
    with pytest.raises(TrainingError, match="Batch size must be at least 1"):
        run_training(make_spec(hyper={"batch_size": 0}), RecordingCallbacks())


def test_it_stops_early_and_exports_the_best_weights(make_spec, monkeypatch):
    from workers.training import reporting
    from workers.training.modeling import trainable_parameters

    scripted = iter([3.0, 2.0, 2.5, 2.6, 1.0, 1.0])
    snapshots = {}

    def scripted_validation(run):
        snapshots[run.state.step] = {name: p.detach().clone() for name, p in trainable_parameters(run.model).items()}
        return {"validation_loss": next(scripted)}

    monkeypatch.setattr(reporting, "validation_metrics", scripted_validation)
    spec = make_spec(hyper={"batch_size": 2, "eval_every_steps": 1, "early_stopping_patience": 2})
    result = run_training(spec, RecordingCallbacks())
    assert (result.status, result.final_step, result.total_steps) == ("early_stopped", 4, 6)
    assert result.metrics["training"]["best_step"] == 2
    best = {name.replace(".default", ""): value for name, value in snapshots[2].items()}
    assert_same_weights(adapter_weights(result.adapter_dir), best)


def test_it_resumes_a_run_that_ran_out_of_patience_as_early_stopped(make_spec, monkeypatch):
    from workers.training import reporting
    from workers.training.loop import latest_checkpoint

    scripted = iter([3.0, 2.0, 2.5, 2.6])
    monkeypatch.setattr(reporting, "validation_metrics", lambda run: {"validation_loss": next(scripted)})
    spec = make_spec(hyper={"batch_size": 2, "eval_every_steps": 1, "early_stopping_patience": 2,
                            "checkpoint_every_steps": 4})
    first = run_training(spec, RecordingCallbacks())
    resumed = run_training(spec, RecordingCallbacks(), resume_from=latest_checkpoint(spec.checkpoint_dir))
    assert (resumed.status, resumed.steps_run, resumed.final_step) == ("early_stopped", 0, 4)
    assert_same_weights(adapter_weights(resumed.adapter_dir), adapter_weights(first.adapter_dir))


def test_it_refuses_malformed_rows_with_the_expected_shape(make_spec):
    with pytest.raises(TrainingError, match='dialogue rows look like {"messages"'):
        run_training(make_spec(train_rows=[{"text": "Hi"}]), RecordingCallbacks())
