"""Smoke runs on the two real bundled bases: a few LoRA steps on SmolLM2, full tuning of MiniLM."""

from __future__ import annotations

import pytest

from finetune.spec import Hyperparameters, TrainingSpec
from tests.workers.training.conftest import LABELS, RecordingCallbacks, chat
from workers.training.loop import run_training

pytestmark = pytest.mark.real_model


def test_it_tunes_smollm2_with_lora(smollm2_folder, tmp_path):
    rows = [chat("How long does delivery take?", "3 to 5 business days."),
            chat("Can I return shoes?", "Yes, within 30 days."),
            chat("Do you ship abroad?", "Yes, to the EU and the UK."),
            chat("Which cards do you take?", "Visa, Mastercard and PayPal.")]
    spec = TrainingSpec(
        task="dialogue", method="lora", base_folder=smollm2_folder, architecture="LlamaForCausalLM",
        hyper=Hyperparameters(epochs=1, learning_rate=2e-4, batch_size=2, max_seq_length=128),
        train_rows=rows, validation_rows=rows[:2], test_rows=rows[:1], labels=[],
        output_dir=tmp_path / "adapter", checkpoint_dir=tmp_path / "checkpoints", sample_count=1,
        sample_max_new_tokens=8,
    )
    callbacks = RecordingCallbacks()
    result = run_training(spec, callbacks)
    assert (result.status, result.steps_run) == ("completed", 2)
    assert all(p.tokens_per_second > 0 for p in callbacks.progress)
    tuned, base = result.metrics["tuned"], result.metrics["baselines"]["base"]
    assert 0 < tuned["loss"] < base["loss"] < 10
    assert result.metrics["samples"][0]["reference"] == "3 to 5 business days."
    assert (result.adapter_dir / "adapter_model.safetensors").exists()


def test_it_fully_tunes_minilm_for_sentiment(minilm_model_folder, sentiment_rows, tmp_path):
    spec = TrainingSpec(
        task="sentiment", method="full", base_folder=minilm_model_folder, architecture="BertModel",
        hyper=Hyperparameters(epochs=1, learning_rate=5e-5, batch_size=6, max_seq_length=64),
        train_rows=sentiment_rows, validation_rows=sentiment_rows[:3], test_rows=sentiment_rows[:6],
        labels=LABELS, output_dir=tmp_path / "model", checkpoint_dir=tmp_path / "checkpoints",
    )
    result = run_training(spec, RecordingCallbacks())
    assert (result.status, result.steps_run) == ("completed", 2)
    assert result.metrics["tuned"]["examples"] == 6
    assert "accuracy" in result.metrics["baselines"]["vader"]
    assert (result.adapter_dir / "model.safetensors").exists()
