"""Exported artifacts load with plain transformers/peft calls and behave like the trained model."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from tests.workers.training.conftest import LABELS, RecordingCallbacks
from workers.training import reporting
from workers.training.export import merge_and_export, zip_folder
from workers.training.loop import run_training

TEXTS = ["Hello there, where is my order?", "Hi"]


def logits_of(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.fixture
def trained_logits(monkeypatch):
    """The logits of the trained model at the moment it is exported."""
    captured = {}
    export = reporting.export_model

    def capturing_export(model, tokenizer, output_dir, **options):
        captured["logits"] = logits_of(model, tokenizer)
        return export(model, tokenizer, output_dir, **options)

    monkeypatch.setattr(reporting, "export_model", capturing_export)
    return captured


def load_base(spec, tokenizer):
    from workers.models.loading import load_causal_lm, load_sequence_classifier

    if spec.task == "dialogue":
        return load_causal_lm(spec.base_folder)
    return load_sequence_classifier(spec.base_folder, spec.labels, pad_token_id=tokenizer.pad_token_id)


@pytest.mark.parametrize(("task", "method"), [("dialogue", "lora"), ("dialogue", "prefix_tuning"),
                                              ("sentiment", "lora"), ("sentiment", "ia3")])
def test_it_zips_an_adapter_that_plain_peft_loads_with_the_same_logits(make_spec, trained_logits, tmp_path, task,
                                                                       method):
    from peft import PeftModel

    from workers.models.loading import load_tokenizer

    spec = make_spec(task=task, method=method)
    result = run_training(spec, RecordingCallbacks())
    archive = zip_folder(result.adapter_dir)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(tmp_path / "extracted")
    folder = tmp_path / "extracted"
    assert {"adapter_model.safetensors", "adapter_config.json", "gpt_store.json", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()}
    tokenizer = load_tokenizer(folder)
    loaded = PeftModel.from_pretrained(load_base(spec, tokenizer), str(folder))
    assert torch.allclose(logits_of(loaded, tokenizer), trained_logits["logits"], atol=1e-5)


@pytest.mark.parametrize("task", ["dialogue", "sentiment"])
def test_it_merges_a_lora_adapter_into_a_standalone_model(make_spec, trained_logits, tmp_path, task):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from workers.models.loading import load_tokenizer

    spec = make_spec(task=task, method="lora")
    result = run_training(spec, RecordingCallbacks())
    merged_dir = merge_and_export(spec.base_folder, result.adapter_dir, tmp_path / "merged", task, spec.labels)
    auto = AutoModelForCausalLM if task == "dialogue" else AutoModelForSequenceClassification
    merged = auto.from_pretrained(merged_dir)
    assert not (merged_dir / "adapter_config.json").exists()
    assert torch.allclose(logits_of(merged, load_tokenizer(merged_dir)), trained_logits["logits"], atol=1e-4)


def test_it_saves_a_fully_tuned_model_that_transformers_loads(make_spec, trained_logits):
    from transformers import AutoModelForCausalLM

    from workers.models.loading import load_tokenizer

    result = run_training(make_spec(method="full"), RecordingCallbacks())
    loaded = AutoModelForCausalLM.from_pretrained(result.adapter_dir)
    assert torch.allclose(logits_of(loaded, load_tokenizer(result.adapter_dir)), trained_logits["logits"], atol=1e-5)


def test_it_writes_the_task_method_labels_and_base_into_the_manifest(make_spec):
    result = run_training(make_spec(task="sentiment", method="lora"), RecordingCallbacks())
    manifest = json.loads((result.adapter_dir / "gpt_store.json").read_text())
    assert manifest["task"] == "sentiment" and manifest["method"] == "lora"
    assert manifest["labels"] == LABELS and manifest["base_architecture"] == "BertModel"
    assert manifest["hyperparameters"]["learning_rate"] == 1e-2


def test_it_refuses_to_merge_a_prefix_tuning_adapter(make_spec, tmp_path):
    spec = make_spec(method="prefix_tuning")
    result = run_training(spec, RecordingCallbacks())
    with pytest.raises(ValueError, match="cannot be merged"):
        merge_and_export(spec.base_folder, result.adapter_dir, tmp_path / "merged", "dialogue", [])
