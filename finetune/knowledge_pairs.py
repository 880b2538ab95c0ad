"""Retrieval training pairs from a knowledge base: each live passage with the question it answers.

The question of a Q&A passage is its own; a document passage is asked by its heading, the last
segment of its title ("How much does shipping cost?" from "Shipping › How much does shipping
cost?"). The passage side is exactly what the knowledge base embeds (`embedding_text`), so the
model is tuned on the very texts it will be asked to search. Web-safe (no torch).
"""

from __future__ import annotations

import json
import re

from accounts.models import Organization
from finetune.datasets import DatasetResult, create_dataset
from finetune.validation import MIN_ROWS
from knowledge.chunking import TITLE_SEPARATOR, embedding_text
from knowledge.models import KnowledgeBase
from knowledge.sources import live_passages

# "Returns (2/3)": the window counter chunking adds to a long section's title is not part of the heading.
_WINDOW_COUNTER = re.compile(r"\s*\(\d+/\d+\)$")
# PDF passages are titled by page ("Manual › page 3"): a page number is no question anyone asks.
_PAGE_HEADING = re.compile(r"^page \d+$")


def heading_question(title: str) -> str:
    """The last segment of a passage title, without chunking's window counter."""
    return _WINDOW_COUNTER.sub("", title.split(TITLE_SEPARATOR)[-1]).strip()


def pairs_from_knowledge(knowledge_base: KnowledgeBase) -> list[dict]:
    """{"query", "passage"} rows for every live passage that has a question to ask of it, in source order."""
    pairs = []
    passages = live_passages(knowledge_base).order_by("version__source__title", "version__source_id", "position")
    for passage in passages.only("title", "question", "text"):
        query = passage.question.strip() or heading_question(passage.title)
        if not query or _PAGE_HEADING.match(query):
            continue
        pairs.append({"query": query, "passage": embedding_text(passage.title, passage.text, passage.question)})
    return pairs


class TooFewPairs(Exception):
    def __init__(self, knowledge_base: KnowledgeBase, count: int) -> None:
        super().__init__(f"{knowledge_base.name} has {count} live question–passage pair{'s' if count != 1 else ''}; "
                         f"at least {MIN_ROWS} are needed to train and evaluate an embedding model. Add Q&A pairs "
                         "or documents with headings, and let them go live first.")


def create_pairs_dataset(organization: Organization, knowledge_base: KnowledgeBase, user=None) -> DatasetResult:
    """Store the knowledge base's pairs as an embedding dataset, through the same validation as an upload.

    Raises TooFewPairs (storing nothing) when there are not enough pairs to train on.
    """
    pairs = pairs_from_knowledge(knowledge_base)
    if len(pairs) < MIN_ROWS:
        raise TooFewPairs(knowledge_base, len(pairs))
    data = "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
    name = f"{knowledge_base.name} — retrieval pairs"
    return create_dataset(organization, data.encode(), f"{knowledge_base.slug}-retrieval-pairs.jsonl", name=name,
                          task="embedding", user=user)
