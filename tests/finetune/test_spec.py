"""Hyperparameter defaults and the form checks that run before a job is queued."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finetune.spec import Hyperparameters, check_combination, default_hyperparameters


def test_it_suggests_dialogue_lora_defaults_for_a_small_llama():
    hyper = default_hyperparameters("dialogue", "lora", "LlamaForCausalLM", n_train_rows=1000,
                                    parameter_count=135_000_000)
    assert (hyper.learning_rate, hyper.epochs, hyper.batch_size, hyper.max_seq_length) == (2e-3, 5, 8, 512)


def test_large_or_unknown_size_chat_models_get_the_usual_lora_learning_rate():
    assert default_hyperparameters("dialogue", "lora", "LlamaForCausalLM", 1000, 7_000_000_000).learning_rate == 2e-4
    assert default_hyperparameters("dialogue", "lora", "LlamaForCausalLM", 1000).learning_rate == 2e-4
    full = default_hyperparameters("dialogue", "full", "LlamaForCausalLM", 1000, 135_000_000)
    assert (full.learning_rate, full.epochs) == (2e-5, 3)


def test_it_suggests_full_tuning_defaults_for_a_bert_encoder():
    hyper = default_hyperparameters("sentiment", "full", "BertModel", n_train_rows=2000)
    assert (hyper.learning_rate, hyper.epochs, hyper.batch_size, hyper.max_seq_length) == (5e-5, 4, 32, 128)


def test_it_gives_sentiment_lora_a_higher_learning_rate():
    assert default_hyperparameters("sentiment", "lora", "BertModel", 2000).learning_rate == 5e-4


def test_it_adds_epochs_for_small_datasets():
    hyper = default_hyperparameters("dialogue", "lora", "LlamaForCausalLM", n_train_rows=40)
    assert hyper.epochs == 6  # 5 steps per epoch; ~30 steps make a run worth having


def test_it_accepts_its_own_defaults():
    for task, architecture in (("dialogue", "LlamaForCausalLM"), ("sentiment", "BertModel")):
        for method in ("lora", "adalora", "ia3", "full"):
            hyper = default_hyperparameters(task, method, architecture, 500)
            assert check_combination(task, method, architecture, hyper) == []


def test_it_rejects_dialogue_on_an_encoder():
    errors = check_combination("dialogue", "lora", "BertModel", Hyperparameters(3, 2e-4, 8))
    assert errors == ["Dialogue needs a chat (causal decoder) model; BertModel is an encoder. "
                      "Use it for sentiment instead."]


@pytest.mark.parametrize(("change", "message"), [
    ({"lora_r": 0}, "LoRA rank must be at least 1."),
    ({"batch_size": 0}, "Batch size must be at least 1."),
    ({"learning_rate": 1.5}, "Learning rate must be between 0 and 1"),
    ({"learning_rate": 0.0}, "Learning rate must be between 0 and 1"),
    ({"max_seq_length": 16}, "Maximum sequence length must be between 64"),
    ({"epochs": 0}, "Epochs must be at least 1."),
    ({"keep_checkpoints": 0}, "Keep at least 1 checkpoint"),
    ({"early_stopping_patience": 0}, "Early-stopping patience must be at least 1"),
])
def test_it_rejects_values_out_of_range(change, message):
    hyper = Hyperparameters(**{"epochs": 3, "learning_rate": 2e-4, "batch_size": 8, **change})
    errors = check_combination("dialogue", "lora", "LlamaForCausalLM", hyper)
    assert len(errors) == 1 and errors[0].startswith(message)


def test_it_rejects_an_unknown_method():
    errors = check_combination("dialogue", "dora", "LlamaForCausalLM", Hyperparameters(3, 2e-4, 8))
    assert errors == ["Unknown tuning method 'dora': choose one of lora, adalora, ia3, prefix_tuning, full."]


def test_it_rejects_prefix_tuning_with_gradient_checkpointing():
    hyper = Hyperparameters(3, 1e-2, 8, gradient_checkpointing=True)
    assert "gradient checkpointing" in check_combination("dialogue", "prefix_tuning", "LlamaForCausalLM", hyper)[0]


def test_it_rejects_prefix_tuning_for_sentiment():
    hyper = Hyperparameters(3, 1e-2, 8, max_seq_length=128)
    errors = check_combination("sentiment", "prefix_tuning", "BertModel", hyper)
    assert errors[0].startswith("Prefix tuning is not available for sentiment")


def test_it_round_trips_hyperparameters_through_a_dict():
    hyper = Hyperparameters(2, 1e-4, 4, target_modules=["q_proj"], early_stopping_patience=3)
    assert Hyperparameters.from_dict(hyper.to_dict()) == hyper


def test_it_rejects_unknown_hyperparameters():
    with pytest.raises(ValueError, match="unknown hyperparameters: lr"):
        Hyperparameters.from_dict({"epochs": 1, "learning_rate": 1e-4, "batch_size": 2, "lr": 1})


def test_it_keeps_torch_out_of_the_form_checks():
    code = "import sys, finetune.spec; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2]).stdout
    assert output.strip() == "False"


def test_it_suggests_full_tuning_defaults_for_an_embedding_encoder():
    hyper = default_hyperparameters("embedding", "full", "BertModel", n_train_rows=2000)
    assert (hyper.learning_rate, hyper.epochs, hyper.batch_size, hyper.max_seq_length) == (2e-5, 4, 32, 256)
    assert default_hyperparameters("embedding", "lora", "BertModel", 2000).learning_rate == 2e-4


def test_it_adds_epochs_for_small_embedding_datasets():
    assert default_hyperparameters("embedding", "full", "BertModel", n_train_rows=64).epochs == 10


def test_it_accepts_its_own_embedding_defaults():
    for method in ("full", "lora"):
        hyper = default_hyperparameters("embedding", method, "BertModel", 500)
        assert check_combination("embedding", method, "BertModel", hyper) == []


def test_it_rejects_embedding_on_a_causal_decoder():
    errors = check_combination("embedding", "lora", "LlamaForCausalLM", Hyperparameters(3, 2e-4, 8))
    assert errors == ["Embedding needs an encoder (a BERT-like model such as all-MiniLM-L6-v2); LlamaForCausalLM is a "
                      "causal decoder. Use it for dialogue or sentiment instead."]


@pytest.mark.parametrize("method", ["adalora", "ia3", "prefix_tuning"])
def test_it_rejects_embedding_methods_other_than_full_and_lora(method):
    errors = check_combination("embedding", method, "BertModel", Hyperparameters(3, 2e-4, 8, max_seq_length=128))
    assert errors[0].startswith(f"Embedding models are tuned fully or with LoRA; {method} is not available")


def test_it_rejects_an_embedding_batch_of_one_row():
    errors = check_combination("embedding", "full", "BertModel", Hyperparameters(3, 2e-5, 1, max_seq_length=128))
    assert errors == ["Embedding training compares each query with the other passages of its batch: "
                      "the batch size must be at least 2."]
