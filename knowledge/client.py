"""The web side of retrieval: ask an inference worker for a knowledge base's best passages (no torch)."""

from __future__ import annotations

from knowledge.policy import Candidate, Lookup
from store.inference.client import call_worker, new_request_id

RETRIEVE_TASK = "knowledge.tasks.retrieve"
CANDIDATES = 8


async def retrieve(knowledge_base_id: int, lookup: Lookup, k: int = CANDIDATES,
                   index_key: str = "") -> tuple[list[Candidate], int]:
    """The candidates, most confident first, and the tokens the worker embedded for the queries.
    `index_key` (KnowledgeBase.index_key, as the caller read it) lets a worker that holds that index
    answer without reading the knowledge base first.
    Raises store.inference.client.InferenceUnavailable / InferenceError like any inference call."""
    result = await call_worker(RETRIEVE_TASK, {"request_id": new_request_id(), "knowledge_base": knowledge_base_id,
                                               "index": index_key, **lookup.payload(), "k": k})
    return [Candidate.from_dict(item) for item in result["candidates"]], int(result.get("prompt_tokens", 0))
