"""The "answer from passages" dialogue recipe: teach a chat model to answer from what it is given.

Each example is exactly what a grounded deployment sends the model (knowledge/prompting.py): the
system prompt with the passages as quoted data — the one that answers among others that do not —
the customer's question, and the answer to learn. The questions and answers come from the knowledge
base itself (its Q&A pairs, and each document entry asked by its heading) and, optionally, from
question–answer pairs worded by real customers and agents, each pointing at the entry it is about.
Distractors are the entries that share the most words with the question (hard negatives), so the
model learns to pick the right passage, not the only one. Web-safe (no torch).
"""

from __future__ import annotations

import json
import random
import re

from accounts.models import Organization
from finetune.datasets import DatasetResult, create_dataset
from finetune.knowledge_pairs import heading_question
from finetune.validation import MIN_ROWS
from knowledge.models import KnowledgeBase
from knowledge.prompting import grounded_messages
from knowledge.sources import live_passages

DISTRACTORS = 2
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "and", "are", "at", "be", "can", "do", "does", "for", "from", "have", "how", "i", "in",
                   "is", "it", "my", "of", "on", "or", "the", "to", "we", "what", "when", "where", "which", "who",
                   "why", "will", "with", "you", "your"])


def _words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOP}


def _passages(knowledge_base: KnowledgeBase) -> list[dict]:
    rows = live_passages(knowledge_base).order_by("version__source_id", "position").values(
        "pk", "title", "text", "question")
    return [dict(row) for row in rows]


def _distractors(question: str, gold: dict, passages: list[dict], rng: random.Random) -> list[dict]:
    words = _words(question)
    others = [p for p in passages if p["pk"] != gold["pk"]]
    rng.shuffle(others)  # ties broken at random, but reproducibly
    others.sort(key=lambda p: len(words & _words(p["title"] + " " + p["text"])), reverse=True)
    return others[:DISTRACTORS]


def recipe_rows(knowledge_base: KnowledgeBase, extra: list[dict] | None = None, system_prompt: str = "",
                seed: int = 42) -> list[dict]:
    """Chat rows {"messages": [system with passages, user, assistant]}.

    `extra`: {"question", "answer", "heading"} items; `heading` names the entry (the last part of a
    passage title, or a Q&A question) the answer comes from. Items naming no entry are skipped.
    """
    rng = random.Random(seed)
    passages = _passages(knowledge_base)
    by_heading: dict[str, dict] = {}
    for passage in passages:
        by_heading.setdefault((passage["question"] or heading_question(passage["title"])).strip().lower(), passage)
    examples: list[tuple[str, dict, str]] = []
    for passage in passages:
        question = passage["question"].strip() or heading_question(passage["title"])
        if question and not question.lower().startswith("page "):
            examples.append((question, passage, passage["text"]))
    for item in extra or []:
        gold = by_heading.get(str(item.get("heading", "")).strip().lower())
        if gold is not None and item.get("question") and item.get("answer"):
            examples.append((str(item["question"]), gold, str(item["answer"])))
    rows = []
    for question, gold, answer in examples:
        shown = [gold, *_distractors(question, gold, passages, rng)]
        rng.shuffle(shown)
        messages = grounded_messages(system_prompt, [{"role": "user", "content": question}],
                                     [{"title": p["title"], "text": p["text"]} for p in shown])
        rows.append({"messages": [*messages, {"role": "assistant", "content": answer.strip()}]})
    return rows


class TooFewExamples(Exception):
    pass


def create_recipe_dataset(organization: Organization, knowledge_base: KnowledgeBase, system_prompt: str = "",
                          extra: list[dict] | None = None, user=None) -> DatasetResult:
    """Store the recipe's rows as a dialogue dataset, through the same validation as an upload."""
    rows = recipe_rows(knowledge_base, extra, system_prompt)
    if len(rows) < MIN_ROWS:
        raise TooFewExamples(f"{knowledge_base.name} gives {len(rows)} question–answer example(s); at least "
                             f"{MIN_ROWS} are needed. Add Q&A pairs or documents with headings, and let them go live.")
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return create_dataset(organization, data.encode(), f"{knowledge_base.slug}-answer-from-passages.jsonl",
                          name=f"{knowledge_base.name} — answer from passages", task="dialogue", user=user)
