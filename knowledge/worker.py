"""The inference worker's side of knowledge (worker-only: it drives the serving engine).

- Embedding a source version: its passages go through the engine in batches of EMBED_BATCH texts
  (all submitted at once, so the engine always has the next batch while this thread writes the
  last one), progress is recorded as it goes, and the version goes live when the last is stored.
- Retrieval: the knowledge base's live passages are held as one in-memory index in the engine's
  model cache (same byte budget, same LRU as the models), keyed by the knowledge base's revision;
  a customer turn's queries are embedded together and searched exactly, and each candidate's
  similarity becomes a confidence through the embedding model's calibration (calibration.py).
  Entries an agent marked wrong for a question worded nearly the same are set aside (feedback.py).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from django.db import close_old_connections

from knowledge import calibration, feedback, sources
from knowledge.calibration import Calibration
from knowledge.chunking import vector_texts
from knowledge.models import KnowledgeBase, Passage, PassageVector, SourceVersion, VersionStatus
from knowledge.spelling import Speller, tokenizer_words, vocabulary
from store.inference.protocol import EmbeddingRequest, EngineError

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
ENGINE_WAIT_SECONDS = 600.0
PROGRESS_EVERY_SECONDS = 0.5
HEARTBEAT_SECONDS = 10.0  # well inside requeue_stalled_versions' 120 s
MAX_CANDIDATES = 20
MAX_QUERIES = 7  # the message, a follow-up joined and the earlier message, 4 parts
ROWS_PER_PASSAGE = 4


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
    from workers.serving.runtime import ServingRuntime

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
    """Every vector of every passage not yet embedded by `model_key` (vector_texts: the passage, then its
    sentences), in batches of EMBED_BATCH texts all submitted at once; progress counts whole passages."""
    rows = list(Passage.objects.filter(version=version).exclude(vectors__model_key=model_key)
                .order_by("position").values_list("pk", "title", "text", "question"))
    done = version.passage_count - len(rows)
    work = [(pk, part, text) for pk, title, body, question in rows
            for part, text in enumerate(vector_texts(title, body, question))]
    answers = []
    for start in range(0, len(work), EMBED_BATCH):
        batch = work[start:start + EMBED_BATCH]
        answer = _Answer()
        engine.submit_embedding(EmbeddingRequest(_request_id("ingest"), model_key, [text for _, _, text in batch]),
                                answer)
        answers.append((batch, answer))
    parts_left = Counter(pk for pk, _, _ in work)
    last_report = 0.0
    for number, (batch, answer) in enumerate(answers, start=1):
        result = _wait_beating(answer, version.pk)
        width = int(result["dim"]) * 4
        buffer = result["vectors"]
        PassageVector.objects.bulk_create(
            [PassageVector(passage_id=pk, model_key=model_key, part=part, vector=buffer[i * width:(i + 1) * width])
             for i, (pk, part, _) in enumerate(batch)], ignore_conflicts=True)
        parts_left.subtract(pk for pk, _, _ in batch)
        if report and (time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS or number == len(answers)):
            last_report = time.monotonic()
            complete = done + sum(1 for left in parts_left.values() if left == 0)
            sources.record_progress(version.pk, complete, knowledge_base_id)


def _wait_beating(answer: _Answer, version_id: int) -> dict:
    """The answer, beating the version's heartbeat while the engine is busy with batches ahead of it."""
    waited = 0.0
    while not answer.done.wait(HEARTBEAT_SECONDS):
        waited += HEARTBEAT_SECONDS
        if waited >= ENGINE_WAIT_SECONDS:
            raise EngineError("timeout", f"the engine did not answer within {ENGINE_WAIT_SECONDS:g} s")
        sources.beat_version(version_id)
    return answer.wait(timeout=0)


# --- retrieval -------------------------------------------------------------------------------------


def model_calibration(knowledge_base: KnowledgeBase) -> Calibration:
    """The calibration its embedding model records (a tuned model's manifest, a bundled model's folder)."""
    from store.artifacts import ArtifactMissing, local_folder, tuned_name

    folder: Path | None = None
    if knowledge_base.embedding_tuned is not None:
        try:
            folder = local_folder(tuned_name(knowledge_base.embedding_tuned))  # fetched from the storage if need be
        except ArtifactMissing:
            folder = None  # the engine reports the missing weights when it loads the model
    elif knowledge_base.embedding_base is not None:
        folder = _catalog_folder(knowledge_base.embedding_base, root=False)
    return calibration.read(folder) or calibration.UNTUNED


def _catalog_folder(model, root: bool) -> Path | None:
    """A catalog model's folder on this machine (with `root`, its base's where it is a bundled adapter)."""
    from store.catalog import CatalogError, resolve_source

    try:
        source = resolve_source(model)
    except CatalogError:
        return None
    while root and source.base is not None:
        source = source.base
    return source.folder


def speller(knowledge_base: KnowledgeBase, passages: dict[int, dict]) -> Speller:
    """Corrects customers' spelling towards this knowledge base's words (spelling.py), never changing a
    word its embedding model's tokenizer knows whole."""
    base = knowledge_base.embedding_tuned.base if knowledge_base.embedding_tuned is not None \
        else knowledge_base.embedding_base
    folder = _catalog_folder(base, root=True) if base is not None else None
    texts = (f"{p['question']} {p['title']} {p['text']}" for p in passages.values())
    return Speller(vocabulary(texts), tokenizer_words(folder) if folder is not None else frozenset())


def build_index(knowledge_base: KnowledgeBase, engine: Any = None):
    """The knowledge base's live passages' vectors by its current model, as one matrix; a passage has
    several rows (itself and its sentences), each row's id is its passage's. The passages themselves
    (what a candidate carries) are held with it: a customer's turn reads nothing from the database
    (the query took 2-4 ms of retrieval's ~30). Whatever changes them changes the revision."""
    from workers.serving.search import VectorIndex

    rows = list(PassageVector.objects.filter(passage__version__live_for__knowledge_base=knowledge_base,
                                             model_key=knowledge_base.embedding_key)
                .order_by("passage_id", "part").values_list("passage_id", "vector"))
    vectors = [bytes(vector) for _, vector in rows]
    dim = len(vectors[0]) // 4 if vectors else 1
    passages = _live_passages(knowledge_base)
    spelling = speller(knowledge_base, passages)
    marks = _held_marks(knowledge_base, spelling, engine)
    return VectorIndex.from_rows(knowledge_base.index_key, f"kb{knowledge_base.pk}", [pk for pk, _ in rows],
                                 vectors, dim, extra={"calibration": model_calibration(knowledge_base),
                                                      "embedding_key": knowledge_base.embedding_key,
                                                      "revision": knowledge_base.revision, "passages": passages,
                                                      "speller": spelling, "wrong_answers": marks},
                                 extra_bytes=sum(map(_held_bytes, passages.values())) + spelling.held_bytes()
                                 + (marks[0].numel() * 4 + sum(map(sys.getsizeof, marks[1])) if marks else 0))


def _held_marks(knowledge_base: KnowledgeBase, spelling: Speller, engine: Any):
    """The questions agents marked answered wrong (feedback.py), embedded as customers' questions are
    (spelt as the knowledge base spells them), with their wrong entries; None when there are none."""
    import torch

    marks = feedback.marks_to_hold(knowledge_base)
    if not marks:
        return None
    answer = _Answer()
    (engine or _engine()).submit_embedding(EmbeddingRequest(_request_id("marks"), knowledge_base.embedding_key,
                                             [spelling.corrected(question) for question, _ in marks]), answer)
    result = answer.wait()
    dim = int(result["dim"])
    vectors = torch.frombuffer(bytearray(result["vectors"]), dtype=torch.float32).reshape(-1, dim)
    return vectors, [entries for _, entries in marks]


def _marked_wrong(query_vectors, follow_up: int | None, marks) -> frozenset[tuple[int, str]]:
    """The entries (source id, title) agents marked wrong for a question worded nearly as this turn's
    message, or as its follow-up joined with the question before."""
    if marks is None or query_vectors is None or not len(query_vectors):
        return frozenset()
    vectors, entries = marks
    looked_up = [0] + ([follow_up] if isinstance(follow_up, int) and 0 < follow_up < len(query_vectors) else [])
    near = ((query_vectors[looked_up] @ vectors.T) >= feedback.WRONG_ANSWER_SIMILARITY).any(dim=0)
    return frozenset().union(*(entries[i] for i in near.nonzero().flatten().tolist()))


def _live_passages(knowledge_base: KnowledgeBase) -> dict[int, dict]:
    rows = Passage.objects.filter(version__live_for__knowledge_base=knowledge_base).values(
        "pk", "title", "text", "question", "version__source_id", "version__source__url")
    return {row["pk"]: {"passage_id": row["pk"], "title": row["title"], "text": row["text"],
                        "question": row["question"], "source_id": row["version__source_id"],
                        "url": row["version__source__url"]} for row in rows}


def _held_bytes(passage: dict) -> int:
    """What a held passage costs in memory: its dict and its values."""
    return sys.getsizeof(passage) + sum(sys.getsizeof(value) for value in passage.values())


def retrieve(payload: dict, engine: Any = None) -> dict:
    """The candidates for the queries of one customer turn, most similar first: {"candidates": [passage +
    similarity + confidence + the query that found it], "revision", "prompt_tokens", "searched" (the
    queries as searched)}. Each passage's
    similarity is its best over the queries; confidence is that similarity through the embedding
    model's calibration. Each query is searched as the knowledge base would spell it (spelling.py)."""
    close_old_connections()
    engine = engine or _engine()
    k = max(1, min(int(payload.get("k", 8)), MAX_CANDIDATES))
    index = _index_for(payload, engine)
    queries = [index.extra["speller"].corrected(str(query)) for query in payload["queries"]][:MAX_QUERIES]
    answer = _Answer()
    # A passage can take several of the nearest rows (its sentences): ask for enough rows for k passages.
    engine.submit_search(EmbeddingRequest(_request_id("search"), index.extra["embedding_key"], queries), index,
                         k * ROWS_PER_PASSAGE, answer)
    found = answer.wait()
    best, context = _best_per_passage(found["hits"], payload.get("follow_up"), bool(payload.get("continues")))
    passages = index.extra["passages"]
    # Entries an agent marked wrong for this very question (reworded) are set aside: never its answer.
    wrong = _marked_wrong(found.get("query_vectors"), payload.get("follow_up"), index.extra.get("wrong_answers"))
    set_aside = [pk for pk in {*best, *context} if pk in passages
                 and (passages[pk]["source_id"], passages[pk]["title"]) in wrong]
    for pk in set_aside:
        best.pop(pk, None)
        context.pop(pk, None)
    calibrated = index.extra["calibration"]

    def candidate(pk: int) -> dict:
        # A passage only the conversation found (none of the counted queries did) has no similarity of its own.
        score, query_index = best.get(pk, (0.0, payload.get("follow_up") or 0))
        entry = {**passages[pk], "similarity": round(score, 4), "query": query_index,
                 "confidence": round(calibrated.confidence(score), 4) if pk in best else 0.0}
        if pk in context:
            entry["context_confidence"] = round(calibrated.confidence(context[pk]), 4)
        return entry

    candidates = [candidate(pk) for pk in {*best, *context} if pk in passages]
    candidates.sort(key=lambda c: c["similarity"], reverse=True)
    # The context's passage is kept among the k whatever its own similarity.
    kept = candidates[:k]
    pointed_at = [c for c in candidates[k:] if "context_confidence" in c]
    if pointed_at:
        kept = kept[:-1] + pointed_at[:1]
    return {"candidates": kept, "revision": index.extra["revision"], "prompt_tokens": found["prompt_tokens"],
            "calibration": calibrated.to_dict(), "searched": queries,
            "marked_wrong": sorted(passages[pk]["title"] for pk in set_aside)}


def _index_for(payload: dict, engine: Any):
    """The knowledge base's live index: the one held under the key the caller read (KnowledgeBase.index_key:
    no database read on a customer's turn — it cost ~3 ms of retrieval's ~25), else built from the
    knowledge base as it is now."""
    held = engine.held_index(payload["index"]) if payload.get("index") else None
    if held is not None and held.family == f"kb{payload['knowledge_base']}":
        return held
    knowledge_base = KnowledgeBase.objects.select_related("embedding_base", "embedding_tuned").filter(
        pk=payload["knowledge_base"]).first()
    if knowledge_base is None:
        raise EngineError("model_not_found", "the knowledge base no longer exists")
    return engine.held_index(knowledge_base.index_key) or build_index(knowledge_base, engine)


def _best_per_passage(hits: list[list[tuple[int, float]]], follow_up: int | None,
                      continues: bool = False) -> tuple[dict[int, tuple[float, int]], dict[int, float]]:
    """Each passage's best similarity over the queries, and the query that found it. The joined
    follow-up query (index `follow_up`) counts for a passage only where it beats the earlier
    message alone (the next query, which never counts by itself): the follow-up must add something.

    Second, the context: where the follow-up alone finds best the very passage the conversation points
    at ("are duties included?" after "Do you ship to Canada?"), the joined query's similarity for it,
    though it does not beat the earlier message; and where the message says it `continues` the one before
    ("what about if my order is $30?"), the joined query's best passage whatever the message alone finds.
    Such a passage may be offered as "not sure", never answered with: nothing says the follow-up's answer
    is in it."""
    if not (isinstance(follow_up, int) and 0 <= follow_up < len(hits) - 1):
        follow_up = None
    earlier: dict[int, float] = {}
    for passage_id, score in hits[follow_up + 1] if follow_up is not None else []:
        earlier[passage_id] = max(score, earlier.get(passage_id, float("-inf")))
    best: dict[int, tuple[float, int]] = {}
    for query_index, query_hits in enumerate(hits):
        if follow_up is not None and query_index == follow_up + 1:
            continue
        for passage_id, score in query_hits:
            if query_index == follow_up and score <= earlier.get(passage_id, float("-inf")):
                continue
            if passage_id not in best or score > best[passage_id][0]:
                best[passage_id] = (score, query_index)
    context: dict[int, float] = {}
    if follow_up is None:
        return best, context
    pointed_at = [max(hits[0], key=lambda hit: hit[1])[0]] if hits[0] else []
    if continues and hits[follow_up]:
        pointed_at.append(max(hits[follow_up], key=lambda hit: hit[1])[0])
    for passage_id in pointed_at:
        joined = max((score for found, score in hits[follow_up] if found == passage_id), default=None)
        if joined is not None and joined > best.get(passage_id, (float("-inf"), 0))[0]:
            context[passage_id] = joined
    return best, context


def handle_retrieval(payload: dict, reply_channel: str) -> None:
    from workers.serving.runtime import ServingRuntime

    ServingRuntime.get().answer_once(payload, reply_channel, lambda: retrieve(payload))


def preload(knowledge_base_ids: list[int], engine: Any = None) -> None:
    """At worker start: load the indexes (and embedding models) of knowledge bases that deployments
    use, so the first customer does not pay for it."""
    engine = engine or _engine()
    for knowledge_base in KnowledgeBase.objects.filter(pk__in=knowledge_base_ids):
        try:
            retrieve({"knowledge_base": knowledge_base.pk, "queries": ["hello"], "k": 1}, engine)
        except EngineError as error:
            logger.warning("cannot preload knowledge base %s: %s", knowledge_base.pk, error.message)
