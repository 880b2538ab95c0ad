"""Sections into passages: what is retrieved, quoted and cited.

A section that fits stays whole (an FAQ entry, a Q&A pair); a long one is cut at sentence
boundaries into windows that overlap, so a fact near a cut is whole in at least one passage.
Sizes are in words: the bundled embedding model reads about 256 word pieces, ~170 words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.documents import Section

MAX_PASSAGE_WORDS = 160
WINDOW_WORDS = 120
OVERLAP_WORDS = 30
TITLE_SEPARATOR = " › "
MAX_TITLE_CHARS = 400

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


@dataclass(frozen=True)
class PassageDraft:
    title: str
    text: str
    question: str = ""


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    """Sentences and list items (a line break always ends one)."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def windows(text: str, size: int = WINDOW_WORDS, overlap: int = OVERLAP_WORDS) -> list[str]:
    """Consecutive runs of whole sentences of about `size` words, each starting `overlap` words or so
    before the previous one ended. A single sentence longer than `size` is cut by words."""
    pieces: list[str] = []
    for sentence in sentences(text):
        tokens = sentence.split()
        while len(tokens) > size:
            pieces.append(" ".join(tokens[:size]))
            tokens = tokens[size - overlap:]
        pieces.append(" ".join(tokens))
    result: list[str] = []
    start = 0
    while start < len(pieces):
        end, count = start, 0
        while end < len(pieces) and (count == 0 or count + words(pieces[end]) <= size):
            count += words(pieces[end])
            end += 1
        result.append("\n".join(pieces[start:end]))
        if end >= len(pieces):
            break
        # Step back over whole sentences until about `overlap` words are repeated (never to `start`).
        back, kept = end, 0
        while back - 1 > start and kept + words(pieces[back - 1]) <= overlap:
            back -= 1
            kept += words(pieces[back])
        start = back
    return result


def passages(sections: list[Section]) -> list[PassageDraft]:
    drafts: list[PassageDraft] = []
    for section in sections:
        title = TITLE_SEPARATOR.join(section.path)[:MAX_TITLE_CHARS]
        if section.question or words(section.text) <= MAX_PASSAGE_WORDS:
            drafts.append(PassageDraft(title, section.text.strip(), section.question))
            continue
        parts = windows(section.text)
        for number, part in enumerate(parts, start=1):
            drafts.append(PassageDraft(f"{title} ({number}/{len(parts)})"[:MAX_TITLE_CHARS], part))
    return drafts


def embedding_text(title: str, text: str, question: str = "") -> str:
    """What the embedding model reads for a passage: where it sits (the FAQ question) and its text."""
    return f"{question or title}\n{text}"


MIN_SENTENCE_WORDS = 3


def vector_texts(title: str, text: str, question: str = "") -> list[str]:
    """Every text a passage is embedded as: the whole passage first, then each of its sentences under
    its heading. A question asks about one fact, and its sentence matches it better than the whole
    passage does; the passage's score is the best of its vectors."""
    return passage_and_sentences(embedding_text(title, text, question))


def passage_and_sentences(passage: str) -> list[str]:
    """The same from a passage's embedding text ("heading\ntext")."""
    heading, _, text = passage.partition("\n")
    parts = [s for s in sentences(text) if len(s.split()) >= MIN_SENTENCE_WORDS]
    heading = heading.split(TITLE_SEPARATOR)[-1].strip()
    return [passage] + ([f"{heading}\n{sentence}" for sentence in parts] if len(parts) > 1 else [])
