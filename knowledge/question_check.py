"""Try a list of questions on a knowledge base: what the bot would do with each, and what the confidence
threshold trades on the business's own questions (answers against "not sure" and "I don't know").

The same lookup and decision as a customer's turn (policy.py, replies.quoted_outcome), replayed at
several thresholds over one retrieval per question: the way bench/retrieval_replay.py measured the
default, offered to every business for its own customers' questions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from knowledge import client as knowledge_client
from knowledge.policy import DEFAULT_THRESHOLD, Candidate, Decision, Lookup, decide, retrieval_queries, small_talk
from knowledge.replies import quoted_outcome
from store.api.protocol import Outcome

# The summary compares these (the deployment form takes any value 0–1; these span the range measured
# useful, docs/knowledge.md), the default and every attached deployment's own threshold.
COMPARED_THRESHOLDS = (0.4, 0.5, DEFAULT_THRESHOLD, 0.7)
# Retrievals in flight at once: the worker answers one at a time, so more only queue there.
CHECK_CONCURRENCY = 4


@dataclass
class CheckedQuestion:
    question: str
    lookup: Lookup | None  # None: small talk, answered without a lookup
    candidates: list[Candidate]
    searched: str = ""  # the question as searched, where the spelling correction changed it

    def at(self, threshold: float) -> tuple[Outcome, Decision | None]:
        """What the bot does with it at `threshold`, and the decision (None for small talk)."""
        if self.lookup is None:
            return Outcome.SMALL_TALK, None
        decision = decide(self.candidates, threshold, self.lookup.parts_from, message=self.question)
        return quoted_outcome(decision), decision

    @property
    def confidence(self) -> float:
        return max((c.confidence for c in self.candidates), default=0.0)


@dataclass
class ThresholdRow:
    threshold: float
    answered: int
    not_sure: int
    dont_know: int
    used_by: list[str]  # "default", deployment names


async def check_questions(knowledge_base_id: int, questions: list[str], index_key: str = "") -> list[CheckedQuestion]:
    """Each question looked up as a customer's first message would be. Raises what retrieval raises."""
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def one(question: str) -> CheckedQuestion:
        if small_talk(question) is not None:
            return CheckedQuestion(question, None, [])
        lookup = retrieval_queries([{"role": "user", "content": question}])
        async with gate:
            found = await knowledge_client.retrieve(knowledge_base_id, lookup, index_key=index_key)
        return CheckedQuestion(question, lookup, found.candidates, found.corrected(lookup))

    tasks = [asyncio.ensure_future(one(question)) for question in questions]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:  # the first failure is the answer: the rest would only queue on the worker
            task.cancel()
        raise


def threshold_rows(checked: list[CheckedQuestion], used_by: dict[float, list[str]]) -> list[ThresholdRow]:
    """At each compared threshold (and each one in `used_by`), how many questions would be answered, get
    "not sure" or "I don't know" (small talk counts in none)."""
    rows = []
    for threshold in sorted({*COMPARED_THRESHOLDS, *used_by}):
        outcomes = [item.at(threshold)[0] for item in checked]
        rows.append(ThresholdRow(threshold, outcomes.count(Outcome.QUOTED), outcomes.count(Outcome.NOT_SURE),
                                 outcomes.count(Outcome.DID_NOT_KNOW), used_by.get(threshold, [])))
    return rows
