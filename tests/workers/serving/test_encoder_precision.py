"""Encoders compute in bfloat16 on a CPU that has it natively (workers/models/loading.encoder_dtype_for):
the vectors keep their direction, and nothing else changes precision."""

import pytest
import torch

from store.inference.protocol import EmbeddingRequest, ModelSpec, unpack_vectors
from tests.workers.serving.helpers import RecordingSink
from workers.models import loading

TEXTS = ["How much is express shipping?", "Can I return worn shoes?", "Do gift cards expire after a year?"]


@pytest.mark.parametrize(("flags", "choice", "expected"), [
    ({"avx2", "avx512f", "avx512_bf16"}, "auto", torch.bfloat16),
    ({"avx2", "amx_bf16"}, "auto", torch.bfloat16),
    ({"avx2", "avx512f"}, "auto", torch.float32),  # emulated bfloat16 is slower than float32
    ({"avx512_bf16"}, "float32", torch.float32),
    (set(), "bfloat16", torch.bfloat16),
])
def test_the_encoder_dtype_follows_the_cpu_and_the_setting(monkeypatch, flags, choice, expected):
    monkeypatch.setattr(loading, "_cpu_flags", lambda: frozenset(flags))
    assert loading.encoder_dtype_for("cpu", choice) == expected


def embeddings(make_engine, folder, **options) -> tuple[torch.Tensor, object]:
    engine = make_engine({"encoder:tiny": ModelSpec("encoder:tiny", "encoder", str(folder))}, **options)
    sink = RecordingSink()
    engine.submit_embedding(EmbeddingRequest("precision", "encoder:tiny", TEXTS), sink)
    assert sink.wait().error is None
    return torch.tensor(unpack_vectors(sink.result)), engine


def test_a_bfloat16_encoder_embeds_in_the_same_directions_as_float32(make_engine, tiny_encoder_folder):
    exact, _ = embeddings(make_engine, tiny_encoder_folder)
    fast, engine = embeddings(make_engine, tiny_encoder_folder, encoder_dtype=torch.bfloat16)
    [entry] = [e for e in engine.cache._entries.values() if e.kind == "encoder"]
    assert next(entry.model.parameters()).dtype == torch.bfloat16 and engine.cache.dtype == torch.float32
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert not torch.equal(fast, exact)  # it did compute in bfloat16
    assert torch.nn.functional.cosine_similarity(fast, exact).min() > 0.999
    assert torch.linalg.vector_norm(fast, dim=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-5)
