"""Smoke tests on the two real bundled models, through the worker-side loader."""

import pytest

from store.catalog import sync_catalog
from store.models import FoundationModel

pytestmark = pytest.mark.real_model


def test_it_materializes_smollm2_once_and_runs_a_forward_pass(db):
    import torch

    from workers.models.loading import load_causal_lm, load_tokenizer, model_folder

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

    from workers.models.loading import load_sequence_classifier, load_tokenizer, model_folder

    sync_catalog()
    minilm = FoundationModel.objects.get(slug="all-minilm-l6-v2")
    tokenizer = load_tokenizer(model_folder(minilm))
    model = load_sequence_classifier(minilm, ["negative", "neutral", "positive"])
    batch = tokenizer(["Where is my parcel?", "Love these boots"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)
    assert model.config.id2label[2] == "positive"


def test_the_gguf_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib
    import os

    from workers.models import loading

    path = tmp_path / "model.gguf"
    path.write_bytes(b"first weights")
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: reads.append(a[0]) or real_open(*a, **k))
    assert loading.file_sha256(path) == hashlib.sha256(b"first weights").hexdigest()
    assert loading.file_sha256(path) == hashlib.sha256(b"first weights").hexdigest()
    assert reads == [path]  # the second call did not read the file again
    path.write_bytes(b"other weights, longer")
    os.utime(path, ns=(1, 1))
    assert loading.file_sha256(path) == hashlib.sha256(b"other weights, longer").hexdigest()
