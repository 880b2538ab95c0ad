"""Batched text models: classification and embedding. Texts of every waiting request for one model
go through one forward.

Sentiment scoring of chat messages and the embedding of knowledge passages and queries arrive as
many small concurrent requests (one or a few texts each); running them one request at a time would
spend most of the time in per-call overhead, so texts are pooled per model key and split into
batches of `batch_size`. A classifier's result per text is a label with scores; an encoder's is a
mean-pooled, L2-normalised vector (what sentence-transformers computes for all-MiniLM-L6-v2).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from store.inference.protocol import (
    CONTEXT_LENGTH_EXCEEDED,
    INTERNAL,
    ClassificationRequest,
    EmbeddingRequest,
    EngineError,
)
from workers.models.pooling import mean_pool
from workers.serving.adapters import BASE_ADAPTER
from workers.serving.counters import EngineCounters
from workers.serving.generation import call_sink
from workers.serving.model_cache import Lease, ModelEntry

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class ClassificationJob:
    """A classification or embedding request in the scheduler (the lease's entry says which)."""

    request: ClassificationRequest | EmbeddingRequest
    sink: Any
    lease: Lease
    results: list[Any] = field(default_factory=list)
    next_text: int = 0
    done_texts: int = 0
    prompt_tokens: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * len(self.request.texts)


def _adapter_context(entry: ModelEntry, adapter: str) -> contextlib.AbstractContextManager:
    if entry.peft is None or entry.method != "shared":
        return contextlib.nullcontext()
    if adapter == BASE_ADAPTER:
        return entry.peft.disable_adapter()
    entry.peft.set_adapter(adapter)
    return contextlib.nullcontext()


# The fixed cost of one forward call in padded tokens' worth of compute: all-MiniLM-L6 on 2 CPU cores
# takes ~18 ms per call plus ~0.27 ms per padded token, so one call costs as much as ~64 tokens.
FORWARD_COST_TOKENS = 64


def length_groups(lengths: list[int], forward_cost: int = FORWARD_COST_TOKENS) -> list[list[int]]:
    """Indices of the texts, grouped into the forward calls that waste least compute on padding.

    Chat messages vary from 3 to 70+ tokens; padding a batch to its longest text spent ~60% of the
    compute on padding (bench/chat.py's messages). Sorted by length, the cuts that minimise
    sum(forward_cost + rows * longest) come from a small dynamic programme (O(n^2), n <= batch size).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    best = [0] + [0] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        best[end], cut[end] = min((best[start] + forward_cost + (end - start) * longest, start)
                                  for start in range(end))
    groups: list[list[int]] = []
    end = len(order)
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


# A forward of at most this many tokens (rows x padded length) runs on one thread: a customer's question
# (~10 tokens) or one chat message. Two threads gained nothing on it alone (13.1 ms against 12.3, all-MiniLM-L6,
# 12 tokens; 7% at 32) and lost much when Daphne had the other core: a retrieval (the web's time from a
# turn to its candidates) took 30-33 ms p50 after a generation against 23-24 ms with the query on one
# thread. Longer forwards (ingestion batches, pooled sentiment batches) use every thread.
SMALL_FORWARD_TOKENS = 32


@contextlib.contextmanager
def _threads_for(tokens: int) -> Iterator[None]:
    """One torch thread for a small forward (the engine thread is the process's only torch caller)."""
    before = torch.get_num_threads()
    if tokens > SMALL_FORWARD_TOKENS or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def classify(entry: ModelEntry, adapter: str, texts: list[str]) -> tuple[list[dict], list[int], int]:
    """Label, score and per-label probabilities for each text, each text's token count, and the
    number of forward calls it took (texts of similar length go through together)."""
    model = entry.peft if entry.peft is not None else entry.model
    device = entry.model.device
    tokenized = entry.tokenizer(texts, truncation=True, max_length=entry.context_length)  # once, unpadded
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    labels = entry.labels
    results: list[dict] = [{} for _ in texts]
    groups = length_groups(lengths)
    for group in groups:
        encoded = entry.tokenizer.pad({name: [values[i] for i in group] for name, values in tokenized.items()},
                                      padding=True, return_tensors="pt").to(device)
        with torch.inference_mode(), _adapter_context(entry, adapter), _threads_for(encoded["input_ids"].numel()):
            logits = model(**encoded).logits
        probabilities = torch.softmax(logits.float(), dim=-1).cpu()
        for i, row, best in zip(group, probabilities.tolist(), probabilities.argmax(dim=-1).tolist(), strict=True):
            results[i] = {"label": labels[best], "score": row[best], "scores": dict(zip(labels, row, strict=True))}
    return results, lengths, len(groups)


def embed(entry: ModelEntry, adapter: str, texts: list[str]) -> tuple[list[Any], list[int], int]:
    """One normalised vector per text (mean of the last hidden states over real tokens), each text's
    token count, and the number of forward calls. A text longer than the model reads is an error,
    never silently cut: its vector would not say what the text says."""
    model = entry.peft if entry.peft is not None else entry.model
    device = entry.model.device
    tokenized = entry.tokenizer(texts)
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    limit = entry.context_length
    too_long = [i for i, length in enumerate(lengths) if length > limit]
    if too_long:
        raise EngineError(CONTEXT_LENGTH_EXCEEDED, f"text {too_long[0]} has {lengths[too_long[0]]} tokens; this "
                                                   f"model reads at most {limit}")
    vectors: list[Any] = [None] * len(texts)
    groups = length_groups(lengths)
    for group in groups:
        encoded = entry.tokenizer.pad({name: [values[i] for i in group] for name, values in tokenized.items()},
                                      padding=True, return_tensors="pt").to(device)
        with torch.inference_mode(), _adapter_context(entry, adapter), _threads_for(encoded["input_ids"].numel()):
            pooled = mean_pool(model(**encoded).last_hidden_state, encoded["attention_mask"])
        for i, row in zip(group, pooled.cpu(), strict=True):
            vectors[i] = row
    return vectors, lengths, len(groups)


def _pack(vectors: list[Any]) -> dict:
    """Vectors as one little-endian float32 buffer: a tenth of the size of JSON floats on the wire."""
    if not vectors:
        return {"vectors": b"", "dim": 0}
    stacked = torch.stack(vectors).to(torch.float32).contiguous()
    return {"vectors": stacked.numpy().astype("<f4").tobytes(), "dim": int(stacked.shape[1])}


class ClassificationScheduler:
    """Waiting classification jobs, pooled per model key."""

    def __init__(self, counters: EngineCounters, batch_size: int, release: Callable[[Lease], None]) -> None:
        self.counters = counters
        self.batch_size = batch_size
        self.release = release
        self._queues: OrderedDict[str, deque[ClassificationJob]] = OrderedDict()

    def add(self, job: ClassificationJob) -> None:
        if not job.request.texts:
            self._finish(job)
            return
        self._queues.setdefault(job.request.model_key, deque()).append(job)

    def has_work(self) -> bool:
        return any(self._queues.values())

    def run(self, max_batches_per_model: int = 4) -> None:
        """Classify what is waiting; bounded so a flood of texts cannot stall the decode loop."""
        for model_key in list(self._queues):
            for _ in range(max_batches_per_model):
                if not self._queues.get(model_key):
                    break
                self._run_batch(model_key)
            if not self._queues.get(model_key):
                self._queues.pop(model_key, None)

    def cancel(self, request_ids: set[str], on_cancel: Callable[[ClassificationJob], None]) -> None:
        for model_key, queue in list(self._queues.items()):
            for job in [job for job in queue if job.request.request_id in request_ids]:
                queue.remove(job)
                self.release(job.lease)
                on_cancel(job)
            if not queue:
                self._queues.pop(model_key, None)

    def fail_all(self, code: str, message: str) -> None:
        for queue in self._queues.values():
            for job in queue:
                self.release(job.lease)
                call_sink(job.sink.on_error, code, message)
        self._queues.clear()

    def _run_batch(self, model_key: str) -> None:
        queue = self._queues[model_key]
        pieces: list[tuple[ClassificationJob, int]] = []
        for job in queue:
            while job.next_text < len(job.request.texts) and len(pieces) < self.batch_size:
                pieces.append((job, job.next_text))
                job.next_text += 1
            if len(pieces) == self.batch_size:
                break
        jobs = list(dict.fromkeys(job for job, _ in pieces))
        lease = jobs[0].lease
        encoder = lease.entry.kind == "encoder"
        texts = [job.request.texts[i] for job, i in pieces]
        try:
            results, token_counts, forward_calls = (embed if encoder else classify)(lease.entry, lease.adapter, texts)
        except Exception as error:
            if not isinstance(error, EngineError):
                logger.exception("batch of %s failed", model_key)
                error = EngineError(INTERNAL, f"{'embedding' if encoder else 'classification'} failed: {error}")
            for job in jobs:
                queue.remove(job)
                self.release(job.lease)
                call_sink(job.sink.on_error, error.code, error.message)
            self.counters.add("failed", len(jobs))
            return
        self.counters.add("embedding_forward_calls" if encoder else "classification_forward_calls", forward_calls)
        self.counters.add("embedded_texts" if encoder else "classified_texts", len(pieces))
        for (job, i), result, tokens in zip(pieces, results, token_counts, strict=True):
            # Per-text token counts let a caller that batched texts meter each one.
            job.results[i] = result if encoder else {**result, "tokens": int(tokens)}
            job.done_texts += 1
            job.prompt_tokens += int(tokens)
        for job in jobs:
            if job.done_texts == len(job.request.texts):
                queue.remove(job)
                self._finish(job)

    def _finish(self, job: ClassificationJob) -> None:
        self.release(job.lease)
        if isinstance(job.request, EmbeddingRequest):
            call_sink(job.sink.on_done, {**_pack(job.results), "prompt_tokens": job.prompt_tokens})
        else:
            call_sink(job.sink.on_done, {"results": job.results, "prompt_tokens": job.prompt_tokens})
