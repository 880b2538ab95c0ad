"""What agents teach the bot: a reply marked wrong keeps its entries from answering that question again.

An agent's "mark wrong" on a bot reply from knowledge records the customer's question (as it was looked
up: a follow-up joined with the question before it) and the entries the reply quoted. The knowledge base
gets a new revision, so every inference worker rebuilds its index with the marks; from then on a question
worded nearly the same (its vector within WRONG_ANSWER_SIMILARITY of the marked one's) is not answered
with those entries (knowledge/worker.py): the bot answers with another entry it is sure of, or says it
does not know and offers a person. The review page lists the question so its answer gets written.
"""

from __future__ import annotations

from django.db import transaction

from knowledge import sources
from knowledge.models import KnowledgeBase, WrongAnswer
from knowledge.policy import retrieval_queries

# Cosine similarity (of the knowledge base's embedding model) between a new question and a marked one
# above which they are the same question. Measured with GPT Store Retrieval on the 32 unseen help centres:
# no two different questions answered by the same entry come this close (1 of 1,718 at 0.75), while
# rewordings of one question ("military discount?" / "Do you offer a military discount?") score 0.6-0.9.
WRONG_ANSWER_SIMILARITY = 0.8
MAX_MARKS_HELD = 2000  # per knowledge base, the latest: embedded once per revision in the worker


def record_wrong_answer(knowledge_base: KnowledgeBase, customer_messages: list[str], passages: list[dict],
                        marked_by=None) -> WrongAnswer | None:
    """Remember that `passages` (a bot message's knowledge record) do not answer the last of
    `customer_messages` (the conversation's customer messages up to that question). None when the reply
    quoted no entry (an "I don't know" marked wrong teaches retrieval nothing)."""
    entries = sorted({(int(p["source_id"]), str(p["title"])) for p in passages
                      if p.get("source_id") is not None and p.get("title")})
    lookup = retrieval_queries([{"role": "user", "content": text} for text in customer_messages])
    if not entries or not lookup.queries:
        return None
    question = lookup.queries[lookup.follow_up] if lookup.follow_up is not None else lookup.queries[0]
    with transaction.atomic():
        mark = WrongAnswer.objects.create(knowledge_base=knowledge_base, question=question,
                                          entries=[list(entry) for entry in entries], marked_by=marked_by)
        sources.new_revision(knowledge_base.pk)
    return mark


def forget_wrong_answer(mark: WrongAnswer) -> None:
    """An agent's mark undone (admin): the entries may answer that question again."""
    with transaction.atomic():
        knowledge_base_id = mark.knowledge_base_id
        mark.delete()
        sources.new_revision(knowledge_base_id)


def marks_to_hold(knowledge_base: KnowledgeBase) -> list[tuple[str, frozenset[tuple[int, str]]]]:
    """The knowledge base's marks as the worker holds them: (question, its wrong entries)."""
    rows = WrongAnswer.objects.filter(knowledge_base=knowledge_base).values_list("question", "entries")[
        :MAX_MARKS_HELD]
    return [(question, frozenset((int(source_id), str(title)) for source_id, title in entries))
            for question, entries in rows]
