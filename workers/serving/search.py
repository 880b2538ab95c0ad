"""Exact nearest-neighbour search over an in-memory matrix of embeddings (worker-only).

Generic: rows are ids of whatever the caller embedded (knowledge passages). A 10,000-passage knowledge
base is ~43,000 rows (passages and their sentences) x 384 float32, 66 MB, and a customer turn's queries
are one matrix product over it (~5 ms on one core), so an exact search is both simpler and faster than
an approximate index at the sizes a business's help centre has. Indexes live in the engine's model
cache, under the same byte budget and LRU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.serving.counters import EngineCounters
from workers.serving.model_cache import Lease


@dataclass(eq=False)
class VectorIndex:
    key: str  # unique per content: a new revision is a new key
    family: str  # indexes of the same family replace each other (older revisions of one knowledge base)
    ids: list[int]
    matrix: torch.Tensor  # (n, dim) float32, rows L2-normalised
    extra: dict[str, Any] = field(default_factory=dict)  # the caller's own per-row data (texts, titles)
    extra_bytes: int = 0

    @property
    def nbytes(self) -> int:
        return int(self.matrix.numel() * self.matrix.element_size()) + 8 * len(self.ids) + self.extra_bytes

    @classmethod
    def from_rows(cls, key: str, family: str, ids: list[int], vectors: list[bytes], dim: int,
                  extra: dict[str, Any] | None = None, extra_bytes: int = 0) -> VectorIndex:
        if vectors:
            matrix = torch.frombuffer(bytearray(b"".join(vectors)), dtype=torch.float32).reshape(len(vectors), dim)
        else:
            matrix = torch.zeros((0, dim), dtype=torch.float32)
        return cls(key, family, list(ids), matrix, extra or {}, extra_bytes)


def nearest(index: VectorIndex, queries: torch.Tensor, k: int) -> list[list[tuple[int, float]]]:
    """For each query vector, the k rows with the highest cosine similarity: [(row, score)], best first."""
    if not len(index.ids) or k <= 0:
        return [[] for _ in range(len(queries))]
    # matrix @ queries.T, not queries @ matrix.T: the same numbers, but torch's CPU kernel for the latter
    # (a transposed view of the big operand) took 26 ms for 3 queries over 43,000 rows against 5 ms
    # (measured on this project's 2-core machine; bench/knowledge.py's knowledge base).
    # And a single query (most customer turns) goes as two identical rows: torch's matrix-vector kernel
    # took 9 ms over those 43,000 rows against 3 ms for the matrix-matrix one with two columns.
    rows_in = queries.to(index.matrix.dtype)
    if len(rows_in) == 1:
        rows_in = rows_in.repeat(2, 1)
    scores = (index.matrix @ rows_in.T).T[:len(queries)]
    values, rows = scores.topk(min(k, len(index.ids)), dim=1)
    return [[(int(r), float(v)) for r, v in zip(row_ids.tolist(), row_values.tolist(), strict=True)]
            for row_ids, row_values in zip(rows, values, strict=True)]


class SearchSink:
    """Turns an embedding result into the nearest rows of an index (in the engine thread: one
    matrix product per request), then lets the index go."""

    def __init__(self, sink: Any, lease: Lease, k: int, release: Callable[[Lease], None],
                 counters: EngineCounters) -> None:
        self.sink, self.lease, self.k, self.release, self.counters = sink, lease, k, release, counters
        self.released = False

    def _let_go(self) -> None:
        if not self.released:
            self.released = True
            self.release(self.lease)

    def on_start(self, info: dict) -> None:
        self.sink.on_start(info)

    def on_tokens(self, text: str, n_tokens: int) -> None:
        pass

    def on_done(self, result: dict) -> None:
        try:
            index = self.lease.entry.payload
            dim = int(result["dim"])
            queries = torch.frombuffer(bytearray(result["vectors"]), dtype=torch.float32).reshape(-1, dim) \
                if dim else torch.zeros((0, 0))
            hits = nearest(index, queries, self.k)
            self.counters.add("searches")
            answer = {"hits": [[(index.ids[row], score) for row, score in row_hits] for row_hits in hits],
                      "index_key": index.key, "prompt_tokens": result.get("prompt_tokens", 0),
                      "query_vectors": queries}
        finally:
            self._let_go()
        self.sink.on_done(answer)

    def on_error(self, code: str, message: str) -> None:
        self._let_go()
        self.sink.on_error(code, message)
