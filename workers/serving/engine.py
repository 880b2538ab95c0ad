"""The inference engine: one thread that owns the models and runs one scheduler loop.

Other threads (Celery task threads) only enqueue: `submit_*` and `cancel` append to an inbox
under a lock and return. The engine thread drains the inbox between decode steps, so admission
of new requests (prefill, then merge into the running batch), classification batches and one
decode step per loaded model interleave, and no tensor or model is ever touched by two threads.
Sinks are called from the engine thread and must return quickly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from store.inference.protocol import (
    CANCELLED,
    CONTEXT_LENGTH_EXCEEDED,
    EXPIRED,
    INTERNAL,
    INVALID_REQUEST,
    MODEL_NOT_FOUND,
    ClassificationRequest,
    EmbeddingRequest,
    EngineError,
    GenerationRequest,
    ModelSpec,
)
from workers.serving.classification import ClassificationJob, ClassificationScheduler
from workers.serving.counters import EngineCounters
from workers.serving.generation import DecodeBatch, Row, call_sink
from workers.serving.model_cache import Lease, ModelCache, ModelEntry, plan_entry
from workers.serving.search import SearchSink

logger = logging.getLogger(__name__)


class Sink(Protocol):
    def on_start(self, info: dict) -> None: ...
    def on_tokens(self, text: str, n_tokens: int) -> None: ...
    def on_done(self, result: dict) -> None: ...
    def on_error(self, code: str, message: str) -> None: ...


@dataclass
class _Submission:
    request: GenerationRequest | ClassificationRequest | EmbeddingRequest
    sink: Sink
    #: Resolved once: a request waiting for room in a full batch is looked at again every step. An
    #: in-process caller may also hand over a spec of its own (a model that is not in the catalog).
    spec: ModelSpec | None = None
    entry_key: str = ""
    search: tuple[Any, int] | None = None  # (VectorIndex, k): answer with nearest rows instead of vectors


def stop_token_ids(entry: ModelEntry) -> set[int]:
    """End-of-turn ids: the tokenizer's eos plus whatever the model's generation config lists."""
    ids = {entry.tokenizer.eos_token_id}
    configured = getattr(getattr(entry.model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {int(token) for token in ids if token is not None}


def prompt_ids(entry: ModelEntry, request: GenerationRequest) -> list[int]:
    tokenizer = entry.tokenizer
    try:
        if getattr(tokenizer, "chat_template", None):
            encoded = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=True)
            ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        else:  # a base model without a template: a plain transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in request.messages) + "assistant:"
            ids = tokenizer(text)["input_ids"]
    except Exception as error:  # jinja templates raise whatever they like on bad input
        raise EngineError(INVALID_REQUEST, f"cannot build the prompt: {error}") from None
    limit = entry.context_length - entry.prefix_length - request.max_tokens
    if len(ids) > limit:
        raise EngineError(CONTEXT_LENGTH_EXCEEDED,
                          f"the prompt has {len(ids)} tokens; with max_tokens={request.max_tokens} this model "
                          f"accepts at most {max(limit, 0)}")
    return list(ids)


class InferenceEngine:
    #: Cancelled ids remembered for requests that have not arrived yet (cancel can overtake submit).
    remembered_cancellations = 10_000

    def __init__(self, resolve: Callable[[str], ModelSpec], device: str = "cpu", dtype: Any = None,
                 memory_budget_bytes: int = 6 * 1024**3, max_batch: int = 16, classification_batch: int = 64,
                 encoder_dtype: Any = None, packed_weights: bool = True, prompt_cache_bytes: int = 0) -> None:
        if dtype is None:
            from workers.models.loading import dtype_for

            dtype = dtype_for(device)
        self.resolve = resolve
        self.device = device
        self.max_batch = max_batch
        self._counters = EngineCounters()
        self.cache = ModelCache(device, dtype, memory_budget_bytes, self._counters, encoder_dtype, packed_weights,
                                prompt_cache_bytes)
        self._classifier = ClassificationScheduler(self._counters, classification_batch, self.cache.release)
        self._batches: dict[str, DecodeBatch] = {}
        self._waiting: deque[_Submission] = deque()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._inbox: list[_Submission] = []
        self._cancel_inbox: set[str] = set()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- the interface -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inference-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit_generation(self, request: GenerationRequest, sink: Sink) -> None:
        self._submit(_Submission(request, sink))

    def submit_classification(self, request: ClassificationRequest, sink: Sink, spec: ModelSpec | None = None) -> None:
        self._submit(_Submission(request, sink, spec))

    def submit_embedding(self, request: EmbeddingRequest, sink: Sink, spec: ModelSpec | None = None) -> None:
        self._submit(_Submission(request, sink, spec))

    def submit_search(self, request: EmbeddingRequest, index: Any, k: int, sink: Sink) -> None:
        """Embed the request's texts with its model and answer {"hits": [[(id, score)] per text]}: the k
        rows of `index` (a workers.serving.search.VectorIndex) most similar to each, best first. The
        index is kept in the model cache (same budget, same LRU) while its key stands."""
        self._submit(_Submission(request, sink, search=(index, k)))

    def held_index(self, key: str) -> Any:
        """The index kept under `key`, if any (any thread)."""
        return self.cache.peek_index(key)

    def cancel(self, request_id: str) -> None:
        with self._wake:
            self._cancel_inbox.add(request_id)
            self._wake.notify()

    def preload(self, model_keys: list[str], timeout: float = 600) -> None:
        """Load each model and warm it up (warmup.py), so the first customers do not wait."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("start() the engine before preloading models")
        from workers.serving.warmup import warm_up

        warm_up(self, model_keys, timeout)

    @contextmanager
    def one_admission(self) -> Iterator[None]:
        """Requests submitted inside are taken by one engine iteration: new chat rows of a model prefill together."""
        with self._wake:
            yield

    def counters(self) -> dict[str, Any]:
        return self._counters.snapshot(bytes_in_use=self.cache.bytes_in_use(), budget_bytes=self.cache.budget_bytes)

    def resident(self) -> dict[str, Any]:
        return self.cache.resident()

    # --- the engine thread ---------------------------------------------------------------------

    def _submit(self, submission: _Submission) -> None:
        with self._wake:
            self._inbox.append(submission)
            self._wake.notify()

    def _has_work(self) -> bool:
        return bool(self._waiting) or self._classifier.has_work() or any(self._batches.values())

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._stopping or self._inbox or self._cancel_inbox or self._has_work()):
                    self._wake.wait()
                if self._stopping:
                    break
                incoming, self._inbox = self._inbox, []
                cancels, self._cancel_inbox = self._cancel_inbox, set()
            try:
                self._iteration(incoming, cancels)
            except Exception:  # the loop itself must survive anything; failures are per request below
                logger.exception("inference engine iteration failed")
        self._shutdown()

    def _iteration(self, incoming: list[_Submission], cancels: set[str]) -> None:
        for submission in incoming:
            self._counters.add("requests")
            if isinstance(submission.request, GenerationRequest):
                self._counters.add("generation_requests")
                self._waiting.append(submission)
            else:
                self._counters.add("classification_requests" if isinstance(submission.request, ClassificationRequest)
                                   else "embedding_requests")
                self._start_classification(submission)
        if cancels:
            self._apply_cancellations(cancels)
        if self._waiting:
            self._admit()
        if self._classifier.has_work():
            self._classifier.run()
        for key, batch in list(self._batches.items()):
            try:
                batch.step()
            except Exception as error:
                logger.exception("decode step of %s failed", key)
                batch.fail(INTERNAL, f"generation failed: {error}")
            if not batch.rows:
                del self._batches[key]

    def _resolve(self, model_key: str) -> ModelSpec:
        try:
            return self.resolve(model_key)
        except EngineError:
            raise
        except LookupError:
            raise EngineError(MODEL_NOT_FOUND, f"no model {model_key!r}") from None
        except Exception as error:
            logger.exception("resolving %s failed", model_key)
            raise EngineError(INTERNAL, f"cannot resolve {model_key!r}: {error}") from None

    def _refuse(self, submission: _Submission, now: float) -> bool:
        """Answer requests that must not run: cancelled before admission, or expired."""
        request = submission.request
        if request.request_id in self._cancelled:
            self._counters.add("cancelled")
            if isinstance(request, GenerationRequest):
                call_sink(submission.sink.on_done, {"text": "", "finish_reason": CANCELLED, "prompt_tokens": 0,
                                                    "completion_tokens": 0, "token_ids": []})
            else:
                call_sink(submission.sink.on_error, CANCELLED, "cancelled before it ran")
            return True
        if request.expires_at is not None and request.expires_at < now:
            self._counters.add("expired")
            call_sink(submission.sink.on_error, EXPIRED, "the request expired before the engine picked it up")
            return True
        return False

    def _admit(self) -> None:
        now = time.time()
        admitted: dict[str, list[Row]] = {}
        still_waiting: deque[_Submission] = deque()
        while self._waiting:
            submission = self._waiting.popleft()
            request = submission.request
            assert isinstance(request, GenerationRequest)
            if self._refuse(submission, now):
                continue
            lease: Lease | None = None
            try:
                if submission.spec is None:
                    spec = self._resolve(request.model_key)
                    if spec.kind != "causal":
                        raise EngineError(INVALID_REQUEST, f"{request.model_key} is a classifier, not a chat model")
                    if request.max_tokens < 1:
                        raise EngineError(INVALID_REQUEST, "max_tokens must be at least 1")
                    submission.spec, submission.entry_key = spec, plan_entry(spec)[0]
                spec, key = submission.spec, submission.entry_key
                batch = self._batches.get(key)
                running = len(batch) if batch is not None else 0
                if running + len(admitted.get(key, [])) >= self.max_batch or (
                        batch is not None and not batch.accepts_new_rows()):
                    still_waiting.append(submission)
                    continue
                lease = self.cache.acquire(spec)
                row = Row(request, submission.sink, lease, prompt_ids(lease.entry, request),
                          stop_token_ids(lease.entry))
            except Exception as error:
                if lease is not None:
                    self.cache.release(lease)
                self._fail_submission(submission, error)
                continue
            call_sink(submission.sink.on_start, {"prompt_tokens": len(row.prompt_ids), "model_key": request.model_key})
            admitted.setdefault(key, []).append(row)
        self._waiting = still_waiting
        for key, rows in admitted.items():
            batch = self._batches.get(key)
            if batch is None:
                batch = self._batches[key] = DecodeBatch(rows[0].lease.entry, self._counters, self._release_row)
            try:
                batch.admit(rows)
            except Exception as error:
                logger.exception("prefill for %s failed", key)
                if any(row in batch.rows for row in rows):
                    batch.fail(INTERNAL, f"generation failed: {error}")
                else:
                    for row in rows:
                        self._release_row(row)
                        call_sink(row.sink.on_error, INTERNAL, f"prefill failed: {error}")
                    self._counters.add("failed", len(rows))
            if not batch.rows:
                del self._batches[key]

    def _fail_submission(self, submission: _Submission, error: Exception) -> None:
        """Answer a request that could not be admitted; anything but an EngineError is a bug (logged)."""
        self._counters.add("failed")
        if not isinstance(error, EngineError):
            logger.error("admitting %s failed", submission.request.request_id, exc_info=error)
            error = EngineError(INTERNAL, f"{type(error).__name__}: {error}")
        call_sink(submission.sink.on_error, error.code, error.message)

    def _release_row(self, row: Row) -> None:
        self.cache.release(row.lease)

    def _start_classification(self, submission: _Submission) -> None:
        """Classification and embedding requests: pooled per model by the text scheduler."""
        request = submission.request
        assert isinstance(request, ClassificationRequest | EmbeddingRequest)
        if self._refuse(submission, time.time()):
            return
        wanted = "classifier" if isinstance(request, ClassificationRequest) else "encoder"
        index_lease: Lease | None = None
        try:
            spec = submission.spec or self._resolve(request.model_key)
            if spec.kind != wanted:
                raise EngineError(INVALID_REQUEST, f"{request.model_key} is a {spec.kind} model, not a {wanted}")
            if submission.search is not None:
                index_lease = self.cache.hold_index(submission.search[0])
                submission.sink = SearchSink(submission.sink, index_lease, submission.search[1], self.cache.release,
                                              self._counters)
            lease = self.cache.acquire(spec)
        except Exception as error:
            if index_lease is not None:
                self.cache.release(index_lease)
            self._fail_submission(submission, error)
            return
        call_sink(submission.sink.on_start, {"texts": len(request.texts), "model_key": request.model_key})
        self._classifier.add(ClassificationJob(request, submission.sink, lease))

    def _apply_cancellations(self, request_ids: set[str]) -> None:
        for request_id in request_ids:
            self._cancelled[request_id] = None
        while len(self._cancelled) > self.remembered_cancellations:
            self._cancelled.popitem(last=False)
        for batch in self._batches.values():
            batch.cancel(request_ids)

        def cancelled(job: ClassificationJob) -> None:
            self._counters.add("cancelled")
            call_sink(job.sink.on_error, CANCELLED, "cancelled")

        self._classifier.cancel(request_ids, cancelled)

    def _shutdown(self) -> None:
        message = "the inference engine stopped"
        with self._wake:
            leftovers, self._inbox = self._inbox, []
        for submission in [*self._waiting, *leftovers]:
            call_sink(submission.sink.on_error, CANCELLED, message)
        self._waiting.clear()
        for batch in self._batches.values():
            batch.fail(CANCELLED, message)
        self._batches.clear()
        self._classifier.fail_all(CANCELLED, message)
