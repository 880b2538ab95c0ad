"""The engine's counters: read from any thread, written by the engine thread."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_COUNTERS = (
    "requests", "generation_requests", "classification_requests", "prefill_calls", "kernel_prefills",
    "prompt_tokens_reused",
    "decode_steps", "kernel_steps",
    "decoded_tokens", "max_rows_in_step", "classification_forward_calls", "classified_texts",
    "embedding_requests", "embedding_forward_calls", "embedded_texts", "searches", "index_loads",
    "model_loads", "model_evictions", "adapter_loads", "adapter_evictions",
    "expired", "cancelled", "failed",
)


class EngineCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        # A histogram, not a list: a long-running worker decodes millions of steps.
        self._rows_per_step: Counter[int] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def decode_step(self, rows: int) -> None:
        with self._lock:
            self._values["decode_steps"] += 1
            self._values["decoded_tokens"] += rows
            self._values["max_rows_in_step"] = max(self._values["max_rows_in_step"], rows)
            self._rows_per_step[rows] += 1

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        with self._lock:
            values: dict[str, Any] = dict(self._values)
            values["rows_per_decode_step"] = dict(sorted(self._rows_per_step.items()))
        values.update(extra)
        return values
