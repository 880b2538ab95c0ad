"""The inference worker's side of knowledge (worker-only: it drives the serving engine).

- Embedding a source version: its passages go through the engine in batches of EMBED_BATCH texts
  (all submitted at once, so the engine always has the next batch while this thread writes the
  last one), progress is recorded as it goes, and the version goes live when the last is stored.
- Retrieval: the knowledge base's live passages are held as one in-memory index in the engine's
  model cache (same byte budget, same LRU as the models), keyed by the knowledge base's revision;
  a query is embedded, searched exactly, and the best candidates are scored by the answer checker
  (checker.py), which says how likely each one answers the question.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from django.db import close_old_connections

from knowledge import sources
from knowledge.chunking import embedding_text
from knowledge.models import KnowledgeBase, Passage, PassageVector, SourceVersion, VersionStatus
from store.serving.protocol import EmbeddingRequest, EngineError

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
ENGINE_WAIT_SECONDS = 600.0
PROGRESS_EVERY_SECONDS = 0.5
MAX_CANDIDATES = 20


class _Answer:
    """An engine sink that one thread waits on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict | None = None
        self.error: tuple[str, str] | None = None

    def on_start(self, info: dict) -> None:
        pass

    def on_tokens(self, text: str, n_tokens: int) -> None:
        pass

    def on_done(self, result: dict) -> None:
        self.result = result
        self.done.set()

    def on_error(self, code: str, message: str) -> None:
        self.error = (code, message)
        self.done.set()

    def wait(self, timeout: float = ENGINE_WAIT_SECONDS) -> dict:
        if not self.done.wait(timeout):
            raise EngineError("timeout", f"the engine did not answer within {timeout:g} s")
        if self.error is not None:
            raise EngineError(*self.error)
        assert self.result is not None
        return self.result


def _engine():
    from store.serving.runtime import ServingRuntime

    return ServingRuntime.get().engine


def _request_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


# --- embedding source versions -------------------------------------------------------------------


def embed_version(version_id: int, engine: Any = None) -> str:
    """Embed a version's passages by every model its knowledge base needs, then make it live (or, for a
    live version during a switch of embedding model, complete the switch). Idempotent: a version
    another worker has, or one already done, is left alone. Returns what happened."""
    close_old_connections()
    version = SourceVersion.objects.select_related("source__knowledge_base").filter(pk=version_id).first()
    if version is None:
        return "gone"
    knowledge_base = version.source.knowledge_base
    if version.status == VersionStatus.QUEUED:
        if not sources.claim_version(version_id):
            return "taken"
    elif version.status != VersionStatus.LIVE or knowledge_base.pending_key is None:
        return "nothing to do"
    engine = engine or _engine()
    started = time.monotonic()
    try:
        for model_key in knowledge_base.model_keys:
            _embed_missing(version, model_key, knowledge_base.pk, engine,
                           report=model_key == knowledge_base.embedding_key and version.status != VersionStatus.LIVE)
    except EngineError as error:
        logger.warning("embedding version %s failed: %s", version_id, error.message)
        if version.status != VersionStatus.LIVE:
            sources.fail_version(version_id, f"Embedding failed: {error.message}")
        return "failed"
    except Exception as error:
        logger.exception("embedding version %s failed", version_id)
        if version.status != VersionStatus.LIVE:
            sources.fail_version(version_id, f"Embedding failed: {type(error).__name__}: {error}")
        return "failed"
    if version.status != VersionStatus.LIVE:
        sources.go_live(version_id)
    if knowledge_base.pending_key is not None:
        sources.complete_switch(knowledge_base.pk)
    logger.info("embedded %s v%s (%d passages) in %.1f s", version.source, version.number, version.passage_count,
                time.monotonic() - started)
    return "live"


def _embed_missing(version: SourceVersion, model_key: str, knowledge_base_id: int, engine: Any,
                   report: bool) -> None:
    passages = list(Passage.objects.filter(version=version).exclude(vectors__model_key=model_key)
                    .order_by("position").values_list("pk", "title", "text", "question"))
    done = version.passage_count - len(passages)
    answers = []
    for start in range(0, len(passages), EMBED_BATCH):
        batch = passages[start:start + EMBED_BATCH]
        answer = _Answer()
        engine.submit_embedding(EmbeddingRequest(_request_id("ingest"), model_key,
                                                 [embedding_text(title, text, question)
                                                  for _, title, text, question in batch]), answer)
        answers.append((batch, answer))
    last_report = 0.0
    for batch, answer in answers:
        result = answer.wait()
        dim = int(result["dim"])
        width = dim * 4
        buffer = result["vectors"]
        PassageVector.objects.bulk_create(
            [PassageVector(passage_id=pk, model_key=model_key, vector=buffer[i * width:(i + 1) * width])
             for i, (pk, *_rest) in enumerate(batch)], ignore_conflicts=True)
        done += len(batch)
        if report and (time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS or done == version.passage_count):
            last_report = time.monotonic()
            sources.record_progress(version.pk, done, knowledge_base_id)


# --- retrieval -------------------------------------------------------------------------------------


def index_key(knowledge_base: KnowledgeBase) -> str:
    return f"kb{knowledge_base.pk}:r{knowledge_base.revision}:{knowledge_base.embedding_key}"


def build_index(knowledge_base: KnowledgeBase):
    """The knowledge base's live passages and their vectors by its current model, as one matrix."""
    from store.serving.search import VectorIndex

    rows = list(PassageVector.objects.filter(passage__version__live_for__knowledge_base=knowledge_base,
                                             model_key=knowledge_base.embedding_key)
                .order_by("passage_id").values_list("passage_id", "vector"))
    vectors = [bytes(vector) for _, vector in rows]
    dim = len(vectors[0]) // 4 if vectors else 1
    return VectorIndex.from_rows(index_key(knowledge_base), f"kb{knowledge_base.pk}", [pk for pk, _ in rows],
                                 vectors, dim)


def _passages(ids: list[int]) -> dict[int, dict]:
    rows = Passage.objects.filter(pk__in=ids).values(
        "pk", "title", "text", "question", "version__source_id", "version__source__url")
    return {row["pk"]: {"passage_id": row["pk"], "title": row["title"], "text": row["text"],
                        "question": row["question"], "source_id": row["version__source_id"],
                        "url": row["version__source__url"]} for row in rows}


def retrieve(payload: dict, engine: Any = None) -> dict:
    """The candidates for the queries of one customer turn: {"candidates": [passage + similarity +
    confidence], "revision", "prompt_tokens"}. Confidence is the answer checker's probability that the
    passage answers the question (the best over the queries), or, without a checker, the similarity."""
    from knowledge import checker

    close_old_connections()
    engine = engine or _engine()
    knowledge_base = KnowledgeBase.objects.select_related("embedding_base").filter(
        pk=payload["knowledge_base"]).first()
    if knowledge_base is None:
        raise EngineError("model_not_found", "the knowledge base no longer exists")
    queries = [str(query) for query in payload["queries"]][:4]
    k = max(1, min(int(payload.get("k", 8)), MAX_CANDIDATES))
    index = engine.held_index(index_key(knowledge_base)) or build_index(knowledge_base)
    answer = _Answer()
    engine.submit_search(EmbeddingRequest(_request_id("search"), knowledge_base.embedding_key, queries), index, k,
                         answer)
    found = answer.wait()
    similarity: dict[int, float] = {}
    best_query: dict[int, list[int]] = {}
    for query_index, hits in enumerate(found["hits"]):
        for passage_id, score in hits:
            if score > similarity.get(passage_id, -1.0):
                similarity[passage_id] = score
            best_query.setdefault(passage_id, []).append(query_index)
    passages = _passages(list(similarity))
    candidates = [{**passages[pk], "similarity": round(similarity[pk], 4)} for pk in similarity if pk in passages]
    candidates.sort(key=lambda c: c["similarity"], reverse=True)
    checked = checker.score(engine, queries, candidates, {pk: best_query[pk] for pk in passages})
    for candidate, confidence in zip(candidates, checked, strict=True):
        candidate["confidence"] = round(confidence, 4)
    candidates.sort(key=lambda c: c["confidence"], reverse=True)
    return {"candidates": candidates, "revision": knowledge_base.revision, "prompt_tokens": found["prompt_tokens"]}


def handle_retrieval(payload: dict, reply_channel: str) -> None:
    from store.serving.runtime import ServingRuntime

    ServingRuntime.get().answer_once(payload, reply_channel, lambda: retrieve(payload))


def preload(knowledge_base_ids: list[int], engine: Any = None) -> None:
    """At worker start: load the indexes (and embedding models, and the checker) of knowledge bases
    that deployments use, so the first customer does not pay for it."""
    from knowledge import checker

    engine = engine or _engine()
    for knowledge_base in KnowledgeBase.objects.filter(pk__in=knowledge_base_ids).select_related("embedding_base"):
        try:
            retrieve({"knowledge_base": knowledge_base.pk, "queries": ["hello"], "k": 1}, engine)
        except EngineError as error:
            logger.warning("cannot preload knowledge base %s: %s", knowledge_base.pk, error.message)
    checker.warm_up(engine)
