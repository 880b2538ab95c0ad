"""An embedding job end to end: dataset, runner, registered tuned model, and the serving engine's vectors."""

from __future__ import annotations

import json

import pytest
import torch
from django.core.management import call_command
from django.urls import reverse

from finetune import jobs
from finetune.datasets import create_dataset
from finetune.runner import run_job
from store.tuned import artifact_folder
from tests.workers.training.conftest import FAQ
from workers.training import reporting

TEXTS = ["Do you ship to Canada?", "Hi", "Express delivery costs $12.95, and it arrives the next business day."]


def pairs_jsonl() -> bytes:
    return "".join(json.dumps({"query": query, "passage": passage}) + "\n" for query, passage in FAQ).encode()


def train_tiny_embedding(organization, base, method: str | None = None):
    dataset = create_dataset(organization, pairs_jsonl(), "faq-pairs.jsonl").dataset
    job = jobs.create_job(organization, base, dataset, suffix="faq-search", method=method, enqueue=False,
                          overrides={"epochs": 2, "batch_size": 4, "learning_rate": 1e-3, "max_seq_length": 64})
    job = run_job(job.pk, "test-runner")
    assert job.status == "succeeded", job.error_message
    return job


@pytest.fixture
def vectors_at_export(monkeypatch):
    """Our evaluation pooling of the tuned model, on TEXTS, at the moment it is exported."""
    from workers.training.evaluation import embed_sequences

    captured = {}
    export = reporting.export_model

    def capturing_export(model, tokenizer, output_dir, **options):
        ids = tokenizer(TEXTS, truncation=True, max_length=64)["input_ids"]
        captured["vectors"] = embed_sequences(model, ids, tokenizer.pad_token_id, batch_size=8, device="cpu")
        return export(model, tokenizer, output_dir, **options)

    monkeypatch.setattr(reporting, "export_model", capturing_export)
    return captured


def test_an_embedding_job_registers_a_fully_tuned_embedding_model_with_its_retrieval_report(alice,
                                                                                           tiny_encoder_base):
    job = train_tiny_embedding(alice.organization, tiny_encoder_base)
    tuned = job.tuned_model
    assert (tuned.task, tuned.method, tuned.labels, tuned.slug) == ("embedding", "full", [], "faq-search-v1")
    assert (artifact_folder(tuned) / "model.safetensors").exists()
    assert {"recall_at_1", "recall_at_3", "mrr"} <= set(tuned.metrics["tuned"])
    assert {"recall_at_1", "recall_at_3", "mrr"} <= set(tuned.metrics["baselines"]["base"])
    assert "| this model |" in tuned.card_markdown and "recall@1" in tuned.card_markdown
    job_page, model_page = (reverse("finetune:job_detail", args=[job.public_id]),
                            reverse("store:tuned_detail", args=[tuned.short_id]))
    page = alice.client.get(job_page).content.decode()
    assert "Recall@1" in page and "Top passage before and after tuning" in page
    # The model's page: the recall table is its card's; the details add the before/after samples.
    page = alice.client.get(model_page).content.decode()
    assert "<th>recall@1</th>" in page and "Recall@1" not in page and "Top passage before and after tuning" in page


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_serving_engine_embeds_with_the_tuned_model_exactly_as_evaluated(transactional_db, alice,
                                                                            tiny_encoder_base, vectors_at_export,
                                                                            method):
    """Through the real resolver, in the engine's own thread (hence committed rows)."""
    from store.inference.protocol import EmbeddingRequest, unpack_vectors
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.serving.resolver import resolve_model_key

    tuned = train_tiny_embedding(alice.organization, tiny_encoder_base, method=method).tuned_model
    key = f"tuned:{tuned.pk}"
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_embedding(EmbeddingRequest("round-trip", key, TEXTS), sink)
        result = sink.wait().result
    finally:
        engine.stop()
    assert sink.error is None
    spec = resolve_model_key(key)
    assert (spec.kind, spec.adapter_type, spec.adapter_folder) == ("encoder", method, str(artifact_folder(tuned)))
    served = torch.tensor(unpack_vectors(result))
    assert torch.allclose(served, vectors_at_export["vectors"], atol=1e-5)


def test_the_cli_tunes_an_embedding_model(alice, tiny_encoder_base, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(pairs_jsonl())
    call_command("finetune", "--org", alice.organization.slug, "--base", "tiny-encoder", "--data", str(data),
                 "--task", "embedding", "--epochs", "1", "--batch-size", "4", "--suffix", "cli-search")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "cli-search-v1"
    assert any(line.startswith("  tuned: recall@1") for line in lines)
    assert any(line.startswith("  base: recall@1") for line in lines)


def test_it_refuses_an_embedding_job_on_a_chat_model(alice, tiny_chat_base):
    dataset = create_dataset(alice.organization, pairs_jsonl(), "faq-pairs.jsonl").dataset
    with pytest.raises(jobs.JobRequestError) as raised:
        jobs.create_job(alice.organization, tiny_chat_base, dataset, enqueue=False)
    assert any("cannot be tuned for embedding" in error for error in raised.value.errors)
