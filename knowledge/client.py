"""The web side of retrieval: ask an inference worker for a knowledge base's best passages (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from knowledge.policy import Candidate, Lookup
from store.inference.client import call_worker, new_request_id

RETRIEVE_TASK = "knowledge.tasks.retrieve"
CANDIDATES = 8


@dataclass
class Retrieved:
    candidates: list[Candidate]  # most similar first
    prompt_tokens: int = 0  # the tokens the worker embedded for the queries
    searched: list[str] = field(default_factory=list)  # the queries as the worker searched them (spelling.py)
    marked_wrong: list[str] = field(default_factory=list)  # entries set aside: marked wrong for this question

    def corrected(self, lookup: Lookup) -> str:
        """The customer's message as it was searched, where the spelling correction changed it."""
        return self.searched[0] if self.searched and lookup.queries and self.searched[0] != lookup.queries[0] \
            else ""


async def retrieve(knowledge_base_id: int, lookup: Lookup, k: int = CANDIDATES, index_key: str = "") -> Retrieved:
    """The candidates, most similar first, the tokens the worker embedded and the queries as searched.
    `index_key` (KnowledgeBase.index_key, as the caller read it) lets a worker that holds that index
    answer without reading the knowledge base first.
    Raises store.inference.client.InferenceUnavailable / InferenceError like any inference call."""
    result = await call_worker(RETRIEVE_TASK, {"request_id": new_request_id(), "knowledge_base": knowledge_base_id,
                                               "index": index_key, **lookup.payload(), "k": k})
    return Retrieved([Candidate.from_dict(item) for item in result["candidates"]], int(result.get("prompt_tokens", 0)),
                     [str(query) for query in result.get("searched") or []],
                     [str(title) for title in result.get("marked_wrong") or []])
