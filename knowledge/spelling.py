"""A customer's message as the knowledge base would spell it: "retrun policy" → "return policy",
"hw long 4 a refund 2 show up" → "how long for a refund to show up".

An embedding model splits a misspelt word into word pieces that mean nothing ("retrun" → re ##tr
##un), so "retrun policy" scored 0.24 confidence against the return policy passage and the bot said it
did not know. Two fixes, both conservative (pure Python; the worker searches each query as corrected,
knowledge/worker.py):

- chat shorthand ("u", "ur", "wat", "pls", "b4"...) becomes the word it stands for, and "2" and "4"
  become "to" and "for" where a count cannot be meant ("wants 2 pay", "4 a discount");
- a word that neither the embedding model's vocabulary nor the knowledge base knows becomes the
  knowledge base's word one edit away (two for long words: a letter added, dropped, changed, or two
  swapped), starting with the same letter; among several, one at least as long, then the one the
  knowledge base uses most. A word the model knows is never changed ("shops" does not become
  "shoes"), nor a plural into its singular, nor a name or code ("USPS", "Kanopy" mid-sentence).

Measured on the 34 help centres GPT Store Retrieval was not trained on (3,395 questions, ~390 of them
changed by the correction; docs/knowledge.md): at the default threshold answered right 84.1% → 84.9%,
answerable refused 10.1% → 9.4%, "I don't know" to the questions they do not cover unchanged (59.9%).
Searching with the message as written and as corrected together (each passage at its best) measured
the same, and cost a row in the query's forward: the corrected message replaces it.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

# English chat shorthand seen in customer messages (finetune/retrieval_data/, Acme's customer questions).
CHAT_SHORTHAND = {
    "u": "you", "ur": "your", "r": "are", "y": "why", "n": "and", "wat": "what", "wot": "what", "wht": "what",
    "wen": "when", "hw": "how", "whr": "where", "b4": "before", "pls": "please", "plz": "please",
    "thx": "thanks", "ty": "thank you", "cant": "can't", "dont": "don't", "wont": "won't", "doesnt": "doesn't",
    "didnt": "didn't", "isnt": "isn't", "im": "I'm", "ive": "I've", "whats": "what's", "wats": "what's", "abt": "about",
    "bc": "because", "cuz": "because", "coz": "because", "2day": "today", "tmrw": "tomorrow", "msg": "message",
    "acct": "account", "pw": "password", "pwd": "password", "lng": "long", "wk": "week", "wks": "weeks",
    "hrs": "hours", "hr": "hour", "mins": "minutes", "asap": "as soon as possible",
    "qty": "quantity", "addr": "address", "pts": "points",
}
# "2" and "4" for "to" and "for" ("wants 2 pay", "long 4 a refund"), only before a word that a count
# never precedes: a number stays one ("2 hours", "size 4 toddler", "kid is 4 does he").
DIGIT_SHORTHAND = {"2": "to", "4": "for"}
_AFTER_DIGIT_SHORTHAND = frozenset({
    "a", "an", "the", "my", "your", "ur", "u", "you", "me", "us", "them", "him", "her", "it", "this", "that", "our",
    "his", "their", "no", "new", "get", "be", "go", "do", "see", "pay", "use", "buy", "make", "have", "show", "send",
    "talk", "speak", "renew", "change", "cancel", "return", "book", "order", "come", "bring", "pick", "take", "add",
    "ship", "fix", "join", "know", "find", "check",
})
_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9']*")
MIN_CORRECTED_LENGTH = 4  # shorter words are shorthand (above) or too ambiguous to correct
TWO_EDITS_FROM_LENGTH = 8


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def vocabulary(texts: Iterable[str]) -> Counter:
    """How often the knowledge base uses each word."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word in words(text) if word.isalpha() and len(word) >= MIN_CORRECTED_LENGTH - 1)
    return counts


def _edits(word: str) -> set[str]:
    """Every string one edit away: a letter dropped, two swapped, one changed, one added."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b}
            | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in letters}
            | {a + c + b for a, b in splits for c in letters})


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def edit_distance(a: str, b: str) -> int:
    """Letters added, dropped, changed or swapped (optimal string alignment distance)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


@lru_cache(maxsize=8)
def tokenizer_words(folder: Path) -> frozenset[str]:
    """The whole words a model's tokenizer has a token for (tokenizer.json: WordPiece pieces not
    starting "##", byte-level BPE's "Ġ" pieces, SentencePiece's "▁" ones), lower-cased."""
    path = Path(folder) / "tokenizer.json"
    if not path.exists():
        return frozenset()
    try:
        vocab = json.loads(path.read_text())["model"]["vocab"]
    except (ValueError, KeyError, TypeError):
        return frozenset()
    pieces = vocab.keys() if isinstance(vocab, dict) else (entry[0] for entry in vocab)
    return frozenset(piece.lstrip("Ġ▁").lower() for piece in pieces if not piece.startswith("##")
                     and piece.lstrip("Ġ▁").isalpha())


class Speller:
    """Corrects messages towards one knowledge base's words, given the words its embedding model knows."""

    def __init__(self, knowledge_words: Counter, known_words: frozenset[str]) -> None:
        self.knowledge_words = knowledge_words
        self.known_words = known_words
        # Two edits are found through what the two words become with a letter dropped from each (or
        # neither; from the customer's, up to two): generating every string two edits from a 10-letter
        # word took ~300 ms, this ~1 ms.
        self._by_delete: dict[str, list[str]] = {}
        for word in knowledge_words:
            if len(word) >= TWO_EDITS_FROM_LENGTH - 2:
                for variant in _deletes(word) | {word}:
                    self._by_delete.setdefault(variant, []).append(word)

    def held_bytes(self) -> int:
        """What it costs in memory (the knowledge base's words; the model's are shared by every base)."""
        return (sys.getsizeof(self.knowledge_words) + sum(map(sys.getsizeof, self.knowledge_words))
                + sys.getsizeof(self._by_delete) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in
                                                       self._by_delete.items()))

    def word(self, word: str) -> str:
        lower = word.lower()
        if lower in self.knowledge_words or lower in self.known_words or len(lower) < MIN_CORRECTED_LENGTH \
                or not lower.isalpha():
            return word
        near = {w for w in _edits(lower) if w[:1] == lower[:1] and w in self.knowledge_words}
        if not near and len(lower) >= TWO_EDITS_FROM_LENGTH:
            variants = {lower} | {twice for once in _deletes(lower) for twice in _deletes(once) | {once}}
            near = {w for variant in variants for w in self._by_delete.get(variant, ())
                    if w[:1] == lower[:1] and edit_distance(lower, w) <= 2}
        if not near or any(w == lower + "s" or w + "s" == lower for w in near):
            return word  # "toddlers" is not misspelt because the knowledge base says "toddler"
        # A typo drops a letter more often than it adds one ("ther" is "there", not "the").
        return max(sorted(near), key=lambda w: (len(w) >= len(lower), self.knowledge_words[w]))

    def corrected(self, text: str) -> str:
        """The message with shorthand spelt out and misspelt words corrected; the same text when
        nothing needed it."""
        return _WORD.sub(self._replacement, text)

    def _replacement(self, match: re.Match) -> str:
        word = match.group()
        # A name or a code ("USPS", "Kanopy" mid-sentence) is spelt as the customer means it.
        if word[1:] != word[1:].lower() or (word[0].isupper() and match.string[:match.start()].strip()):
            return word
        if word in DIGIT_SHORTHAND:
            following = _NEXT_WORD.match(match.string, match.end())
            preceded = match.string[:match.start()].rstrip()[-1:].isalpha()
            if preceded and following is not None and following.group(1).lower() in _AFTER_DIGIT_SHORTHAND:
                return DIGIT_SHORTHAND[word]
            return word
        return CHAT_SHORTHAND.get(word.lower()) or self.word(word)
