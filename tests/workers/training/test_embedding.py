"""Retrieval tuning of an encoder: learning, evaluation, checkpoints and the exported artifacts."""

from __future__ import annotations

import json

import pytest
import torch

from tests.workers.training.conftest import RecordingCallbacks, adapter_weights, assert_same_weights
from workers.training import reporting
from workers.training.export import merge_and_export
from workers.training.loop import TrainingError, latest_checkpoint, run_training

TEXTS = ["Do you ship to Canada?", "Hi", "Express delivery costs $12.95, and it arrives the next business day."]


def vectors_of(model, tokenizer) -> torch.Tensor:
    from workers.training.evaluation import embed_sequences

    return embed_sequences(model, tokenizer(TEXTS)["input_ids"], tokenizer.pad_token_id, batch_size=2, device="cpu")


@pytest.fixture
def trained_vectors(monkeypatch):
    """The embeddings of TEXTS by the trained model at the moment it is exported."""
    captured = {}
    export = reporting.export_model

    def capturing_export(model, tokenizer, output_dir, **options):
        captured["vectors"] = vectors_of(model, tokenizer)
        return export(model, tokenizer, output_dir, **options)

    monkeypatch.setattr(reporting, "export_model", capturing_export)
    return captured


def test_it_learns_to_rank_each_question_s_passage_first(make_spec, pair_rows):
    spec = make_spec(task="embedding", method="full", hyper={"epochs": 10, "batch_size": 4},
                     test_rows=pair_rows, final_evaluation=True)
    callbacks = RecordingCallbacks()
    result = run_training(spec, callbacks)
    tuned, base = result.metrics["tuned"], result.metrics["baselines"]["base"]
    assert (tuned["queries"], tuned["passages"]) == (12, 12)
    assert tuned["recall_at_1"] > base["recall_at_1"] and tuned["mrr"] > base["mrr"]
    assert tuned["recall_at_1"] >= 0.9 and tuned["recall_at_3"] >= tuned["recall_at_1"]
    assert sum(callbacks.losses[-3:]) < 0.3 * sum(callbacks.losses[:3])
    # Its calibration (knowledge bases turn similarity into confidence with it) travels with the weights.
    manifest = json.loads((result.adapter_dir / "gpt_store.json").read_text())
    assert manifest["retrieval_calibration"] == tuned["calibration"]
    assert -1 <= tuned["calibration"]["cut"] <= 1 and tuned["calibration"]["scale"] >= 5


def test_it_never_trains_on_a_lone_pair(make_spec, pair_rows):
    rows = [*pair_rows, {"query": "Do you sell socks?", "passage": "Yes, in packs of three."}]
    callbacks = RecordingCallbacks()
    run_training(make_spec(task="embedding", method="full", hyper={"epochs": 3}, train_rows=rows), callbacks)
    assert len(callbacks.losses) == 12  # 13 rows in four batches of 3 or 4 rows, never 4, 4, 4 and 1
    assert all(loss > 0 for loss in callbacks.losses)  # a one-row batch has no negatives: its loss is 0


def test_it_validates_with_the_in_batch_loss_and_recall(make_spec):
    callbacks = RecordingCallbacks()
    run_training(make_spec(task="embedding", method="full", hyper={"epochs": 2}), callbacks)
    [(_, first), (_, second)] = callbacks.evaluations
    assert {"validation_loss", "validation_recall_at_1"} <= set(first)
    assert second["validation_loss"] < first["validation_loss"]
    assert 0 <= second["validation_recall_at_1"] <= 1


def test_it_reports_each_sample_question_with_its_top_passage_before_and_after(make_spec, pair_rows):
    spec = make_spec(task="embedding", method="lora", final_evaluation=True, sample_count=2)
    report = json.loads(json.dumps(run_training(spec, RecordingCallbacks()).metrics, allow_nan=False))
    assert report["task"] == "embedding" and report["split"] == "test"
    passages = {row["passage"] for row in pair_rows}
    for sample, row in zip(report["samples"], pair_rows[-3:], strict=False):
        assert (sample["query"], sample["reference"]) == (row["query"], row["passage"])
        assert sample["base"] in passages and sample["tuned"] in passages
        assert sample["base_rank"] >= 1 and sample["tuned_rank"] >= 1
    assert len(report["samples"]) == 2
    assert report["tuned"]["passages"] == 12  # the test questions search every passage of the dataset


@pytest.mark.parametrize("method", ["full", "lora"])
def test_it_resumes_to_the_same_weights_as_an_uninterrupted_run(make_spec, method):
    hyper = {"batch_size": 4, "epochs": 2, "lora_dropout": 0.3, "eval_every_steps": 2, "early_stopping_patience": 10}
    uninterrupted = run_training(make_spec(task="embedding", method=method, hyper=hyper), RecordingCallbacks())
    spec = make_spec(task="embedding", method=method, hyper=hyper)
    run_training(spec, RecordingCallbacks(stop_after={3: "shutdown"}))
    resumed = run_training(spec, RecordingCallbacks(), resume_from=latest_checkpoint(spec.checkpoint_dir))
    assert (resumed.status, resumed.steps_run, resumed.final_step) == ("completed", 3, 6)
    assert_same_weights(adapter_weights(resumed.adapter_dir), adapter_weights(uninterrupted.adapter_dir))


def test_a_full_tuning_checkpoint_holds_every_weight_of_the_encoder(make_spec, tiny_encoder_folder):
    from safetensors.torch import load_file
    from transformers import AutoModel

    spec = make_spec(task="embedding", method="full", hyper={"checkpoint_every_steps": 1})
    run_training(spec, RecordingCallbacks())
    saved = load_file(str(latest_checkpoint(spec.checkpoint_dir) / "trainable.safetensors"))
    assert set(saved) == {name for name, _ in AutoModel.from_pretrained(tiny_encoder_folder).named_parameters()}


def test_it_saves_a_fully_tuned_encoder_that_transformers_loads_with_the_same_vectors(make_spec, trained_vectors):
    from transformers import AutoModel

    from workers.models.loading import load_tokenizer

    result = run_training(make_spec(task="embedding", method="full"), RecordingCallbacks())
    loaded = AutoModel.from_pretrained(result.adapter_dir)
    assert torch.allclose(vectors_of(loaded, load_tokenizer(result.adapter_dir)), trained_vectors["vectors"],
                          atol=1e-5)
    manifest = json.loads((result.adapter_dir / "gpt_store.json").read_text())
    assert (manifest["task"], manifest["method"], manifest["labels"]) == ("embedding", "full", [])


def test_it_saves_a_feature_extraction_lora_adapter_that_plain_peft_loads(make_spec, trained_vectors,
                                                                         tiny_encoder_folder):
    from peft import PeftModel
    from transformers import AutoModel

    from workers.models.loading import load_tokenizer

    result = run_training(make_spec(task="embedding", method="lora"), RecordingCallbacks())
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["task_type"] == "FEATURE_EXTRACTION" and config["modules_to_save"] is None
    loaded = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_encoder_folder), str(result.adapter_dir))
    assert torch.allclose(vectors_of(loaded, load_tokenizer(result.adapter_dir)), trained_vectors["vectors"],
                          atol=1e-5)


def test_it_merges_an_embedding_lora_adapter_into_a_standalone_encoder(make_spec, trained_vectors, tmp_path,
                                                                       pair_rows):
    from transformers import AutoModel

    from workers.models.loading import load_tokenizer

    spec = make_spec(task="embedding", method="lora", test_rows=pair_rows, final_evaluation=True)
    result = run_training(spec, RecordingCallbacks())
    merged_dir = merge_and_export(spec.base_folder, result.adapter_dir, tmp_path / "merged", "embedding", [])
    merged = AutoModel.from_pretrained(merged_dir)
    assert torch.allclose(vectors_of(merged, load_tokenizer(merged_dir)), trained_vectors["vectors"], atol=1e-4)
    from knowledge.calibration import read

    assert read(result.adapter_dir) is not None
    assert read(merged_dir) == read(result.adapter_dir)  # the merged copy keeps the calibration


def test_it_refuses_malformed_pairs_with_the_expected_shape(make_spec):
    with pytest.raises(TrainingError, match='embedding rows look like {"query", "passage"}'):
        run_training(make_spec(task="embedding", method="full", train_rows=[{"text": "Hi"}]), RecordingCallbacks())


def test_it_refuses_to_tune_a_chat_model_for_embedding(make_spec, tiny_chat_folder):
    spec = make_spec(task="embedding", method="lora", base_folder=tiny_chat_folder, architecture="LlamaForCausalLM")
    with pytest.raises(TrainingError, match="Embedding needs an encoder"):
        run_training(spec, RecordingCallbacks())
