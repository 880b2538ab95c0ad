"""Smoke tests on the two real bundled models, through the worker-side loader."""

import pytest

from store.catalog import sync_catalog
from store.models import FoundationModel

pytestmark = pytest.mark.real_model


def test_it_materializes_smollm2_once_and_runs_a_forward_pass(db):
    import torch

    from store.serving.loading import load_causal_lm, load_tokenizer, model_folder

    sync_catalog()
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")
    folder = model_folder(smol)
    assert (folder / "model.safetensors").exists()
    assert model_folder(smol) == folder  # the cached copy is reused
    tokenizer = load_tokenizer(folder)
    model = load_causal_lm(folder)
    assert getattr(model, "hf_quantizer", None) is None
    ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are a shop assistant."}, {"role": "user", "content": "Hi!"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], 49152)
    assert torch.isfinite(logits).all()


def test_it_loads_minilm_with_a_classification_head(db):
    import torch

    from store.serving.loading import load_sequence_classifier, load_tokenizer, model_folder

    sync_catalog()
    minilm = FoundationModel.objects.get(slug="all-minilm-l6-v2")
    tokenizer = load_tokenizer(model_folder(minilm))
    model = load_sequence_classifier(minilm, ["negative", "neutral", "positive"])
    batch = tokenizer(["Where is my parcel?", "Love these boots"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)
    assert model.config.id2label[2] == "positive"
