"""Knowledge fixtures: Alice's knowledge base, and an in-process inference engine behind the worker's
retrieval (the Celery hop is replaced by a direct call; the engine, models and index are real)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from knowledge import sources

REPO = Path(__file__).resolve().parents[2]
ACME_FAQ = REPO / "finetune" / "demo_data" / "acme-faq.md"

SMALL_FAQ = """# Alice Shoes help

## Shipping

### How much does shipping cost?
Standard shipping is free on orders over $50; otherwise it costs $4.95. Express shipping costs $12.95.

### How long does delivery take?
Standard shipping takes 3–5 business days. Express takes 1–2 business days.

## Returns

### What is your return policy?
You can return unworn shoes within 30 days of delivery. Returns are free.
"""


@pytest.fixture
def knowledge_base(alice, catalog):
    return sources.create_knowledge_base(alice.organization, "Help centre")


@pytest.fixture
def tiny_knowledge_base(alice, tiny_encoder_base):
    return sources.create_knowledge_base(alice.organization, "Tiny help", embedding_model=tiny_encoder_base)


@pytest.fixture
def encoder_engine(tiny_encoder_folder, catalog):
    """A real engine serving the tiny encoder and the real embedding models (all-MiniLM-L6-v2, and GPT Store
    Retrieval, the knowledge bases' default) as embedding models."""
    from store.inference.protocol import ModelSpec
    from workers.models.loading import model_folder
    from workers.serving.engine import InferenceEngine

    specs = {
        "encoder:tiny-encoder": ModelSpec("encoder:tiny-encoder", "encoder", str(tiny_encoder_folder)),
        "encoder:all-minilm-l6-v2": ModelSpec("encoder:all-minilm-l6-v2", "encoder",
                                              str(model_folder(catalog["all-minilm-l6-v2"]))),
        "encoder:gpt-store-retrieval": ModelSpec("encoder:gpt-store-retrieval", "encoder",
                                                 str(model_folder(catalog["gpt-store-retrieval"]))),
    }
    engine = InferenceEngine(lambda key: specs[key], device="cpu")
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def worker_retrieval(encoder_engine, monkeypatch):
    """Retrieval requests go straight to knowledge.worker.retrieve on the in-process engine."""
    from knowledge import worker
    from store.inference.client import InferenceError
    from store.inference.protocol import EngineError

    async def call_worker(task, payload):
        assert task == "knowledge.tasks.retrieve"
        try:
            return await asyncio.to_thread(worker.retrieve, payload, encoder_engine)
        except EngineError as error:  # as store.inference.client reports a worker's error
            raise InferenceError(error.code, error.message) from None

    monkeypatch.setattr("knowledge.client.call_worker", call_worker)
    return encoder_engine


def embed_live(knowledge_base, engine) -> None:
    """What the inference worker does for every pending version: embed it, make it live."""
    from knowledge import worker

    for version in sources.pending_versions(knowledge_base):
        assert worker.embed_version(version.pk, engine) == "live"
