"""What the web process and the Celery glue exchange with the inference engine.

Plain dataclasses, no torch: the web process imports this module to build requests and to read
error codes, and everything here must survive a JSON round trip through Celery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Self

#: peft methods the engine knows how to serve; `None` means the plain base model.
ADAPTER_TYPES = (None, "lora", "adalora", "ia3", "prefix_tuning", "full")
MODEL_KINDS = ("causal", "classifier", "encoder")

#: Error codes, also used as the `code` of OpenAI-shaped API errors.
MODEL_NOT_FOUND = "model_not_found"
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
DOES_NOT_FIT = "does_not_fit"
EXPIRED = "expired"
CANCELLED = "cancelled"
INTERNAL = "internal"
INVALID_REQUEST = "invalid_request"


@dataclass
class ModelSpec:
    """What to load for a model key; the lead's resolver builds it from the database."""

    key: str
    kind: str
    base_folder: str
    adapter_folder: str | None = None
    adapter_type: str | None = None
    labels: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise EngineError(INVALID_REQUEST, f"{self.key}: unknown model kind {self.kind!r}")
        if self.adapter_type not in ADAPTER_TYPES:
            raise EngineError(INVALID_REQUEST, f"{self.key}: unknown adapter type {self.adapter_type!r}")
        if self.adapter_type is not None and not self.adapter_folder:
            raise EngineError(INVALID_REQUEST, f"{self.key}: adapter type {self.adapter_type} needs adapter_folder")
        if self.kind == "classifier" and not self.labels:
            raise EngineError(INVALID_REQUEST, f"{self.key}: a classifier needs its labels")


class _Wire:
    """A request as it crosses Celery: a plain dict of its fields, and back."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


@dataclass
class GenerationRequest(_Wire):
    request_id: str
    model_key: str
    messages: list[dict]
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    expires_at: float | None = None
    #: OpenAI's penalties (-2 to 2) on tokens already generated: per occurrence, and once per token.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    #: Keep generating past the end-of-turn token, up to max_tokens (benchmarks and tests only).
    ignore_eos: bool = False


@dataclass
class ClassificationRequest(_Wire):
    request_id: str
    model_key: str
    texts: list[str]
    expires_at: float | None = None


@dataclass
class EmbeddingRequest(_Wire):
    """Texts to embed with an encoder (mean-pooled, L2-normalised vectors, as sentence-transformers does)."""

    request_id: str
    model_key: str
    texts: list[str]
    expires_at: float | None = None


#: The engine's answer to an embedding request: vectors as one float32 little-endian buffer, row-major.
def unpack_vectors(result: dict) -> list[list[float]]:
    import array
    import sys

    values = array.array("f")
    values.frombytes(result["vectors"])
    if sys.byteorder == "big":
        values.byteswap()
    dim = int(result["dim"])
    return [values[i:i + dim].tolist() for i in range(0, len(values), dim)] if dim else []


class EngineError(Exception):
    """A failure that belongs to one request; `code` is one of the constants above."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code
