"""Does a reply state only specifics its sources hold?

A "specific" is what a customer would act on: a price, a number (with or without a unit: a
duration, a size, a count), a percentage, a time of day, a date, a phone number, an email
address, a URL, a product or brand name. Each one in a reply must appear in the cited passages or
in the customer's own words, after normalisation: "$12.95" = "12.95 dollars", "5" = "five",
"3–5" = "3 to 5" (each end of a range is a number), "2 pm" = "2:00 p.m." = "14:00".

Pure Python, no model: it runs in the web process on every sentence of a grounded reply before the
sentence is shown to anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12,
}
_NUMBER_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_CURRENCY_WORDS = r"dollars?|usd|bucks|euros?|eur|pounds?|gbp|cents?"
_NUM = rf"(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|(?:{_NUMBER_WORD})(?:[- ](?:{_NUMBER_WORD}))?"

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DOMAIN = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|uk|us|ca|de|fr|shop|store|example|app|dev)\b", re.I)
_PHONE = re.compile(r"(?<![\w.])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{2,4}[\s.-]\d{3,4}(?![\w])")
_MONEY = re.compile(rf"(?:[$£€]\s?({_NUM}))|(?:\b({_NUM})\s?(?:{_CURRENCY_WORDS})\b)", re.I)
_PERCENT = re.compile(rf"\b({_NUM})\s?(?:%|percent\b|per cent\b)", re.I)
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?(a\.?m\.?|p\.?m\.?)(?![a-z])|\b([01]?\d|2[0-3]):([0-5]\d)\b", re.I)
_NUMBER = re.compile(rf"\b(?:{_NUM})\b", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’&+-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n\s*(?:[-*•]\s*)?|[\"(]\s*)$")

# Capitalised words that are not names wherever they stand.
_NOT_NAMES = {"i", "i'm", "i'll", "i've", "i'd", "ok", "okay", "faq", "et", "pt", "ct", "mt"}


def number_value(text: str) -> float | None:
    """12 / 12.5 / 1,200 / "twelve" / "twenty-five" as a number."""
    cleaned = text.lower().replace(",", "").strip()
    try:
        return float(cleaned)
    except ValueError:
        pass
    total = 0.0
    for part in re.split(r"[- ]", cleaned):
        if part not in _NUMBER_WORDS:
            return None
        value = _NUMBER_WORDS[part]
        total = total * value if value in (100, 1000) and total else total + value
    return total


def _money_key(amount: str) -> str:
    value = number_value(amount)
    return f"money:{value:g}" if value is not None else f"money:{amount}"


def _time_key(hour: str, minute: str | None, meridiem: str | None) -> str:
    h, m = int(hour), int(minute or 0)
    if meridiem:
        pm = meridiem.lower().startswith("p")
        h = (h % 12) + (12 if pm else 0)
    return f"time:{h:02d}:{m:02d}"


@dataclass(frozen=True)
class Specific:
    kind: str  # url | email | phone | money | percent | time | number | name
    text: str  # as written
    key: str  # normalised


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def specifics(text: str) -> list[Specific]:
    """Every specific in `text`, each character counted once (a phone's digits are not also numbers)."""
    found: list[Specific] = []
    taken = [False] * len(text)

    def claim(match: re.Match, kind: str, key: str) -> None:
        if any(taken[match.start():match.end()]):
            return
        for i in range(match.start(), match.end()):
            taken[i] = True
        found.append(Specific(kind, match.group(0).strip(), key))

    for match in _URL.finditer(text):
        claim(match, "url", "url:" + match.group(0).rstrip(".,;:!?").lower().split("://")[-1].removeprefix("www."))
    for match in _EMAIL.finditer(text):
        claim(match, "email", "email:" + match.group(0).lower())
    for match in _DOMAIN.finditer(text):
        claim(match, "url", "url:" + match.group(0).lower().removeprefix("www."))
    for match in _PHONE.finditer(text):
        if len(_digits(match.group(0))) >= 7:
            claim(match, "phone", "phone:" + _digits(match.group(0))[-10:])
    for match in _MONEY.finditer(text):
        claim(match, "money", _money_key(match.group(1) or match.group(2)))
    for match in _PERCENT.finditer(text):
        value = number_value(match.group(1))
        claim(match, "percent", f"percent:{value:g}" if value is not None else match.group(0))
    for match in _TIME.finditer(text):
        if match.group(1):
            claim(match, "time", _time_key(match.group(1), match.group(2), match.group(3)))
        else:
            claim(match, "time", _time_key(match.group(4), match.group(5), None))
    for match in _NUMBER.finditer(text):
        value = number_value(match.group(0))
        if value is not None:
            claim(match, "number", f"number:{value:g}")
    for match in _WORD.finditer(text):
        word = match.group(0)
        if any(taken[match.start():match.end()]) or word.lower() in _NOT_NAMES:
            continue
        inner_capital = any(ch.isupper() for ch in word[1:]) and not word.isupper()
        acronym = word.isupper() and len(word) >= 2
        has_digit = any(ch.isdigit() for ch in word)
        capitalised = word[0].isupper() and not _SENTENCE_START.search(text[:match.start()])
        if inner_capital or acronym or has_digit or capitalised:
            found.append(Specific("name", word, "name:" + word.lower().strip("'’")))
    return found


@dataclass
class Support:
    """What the sources and the customer's words make it safe to say."""

    keys: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)  # every number however it is written (a price's 12.95 too)
    words: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: list[str]) -> Support:
        support = cls()
        for text in texts:
            for specific in specifics(text):
                support.keys.add(specific.key)
                if specific.kind == "phone":
                    support.phones.add(specific.key.split(":", 1)[1])
            for match in _NUMBER.finditer(text):
                value = number_value(match.group(0))
                if value is not None:
                    support.numbers.add(f"{value:g}")
            support.words.update(word.lower().strip("'’") for word in _WORD.findall(text))
        return support

    def holds(self, specific: Specific) -> bool:
        if specific.key in self.keys:
            return True
        kind, _, value = specific.key.partition(":")
        if kind == "number":
            # A bare number is supported by the same number anywhere: "7" by "5–7 business days" or "$7".
            return value in self.numbers
        if kind == "name":
            return value in self.words
        if kind == "phone":
            return any(phone.endswith(value) or value.endswith(phone) for phone in self.phones)
        return False


@dataclass
class Verdict:
    unsupported: list[Specific]

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def describe(self) -> str:
        return ", ".join(f"{s.text!r} ({s.kind})" for s in self.unsupported)


def check(reply: str, support: Support) -> Verdict:
    return Verdict([specific for specific in specifics(reply) if not support.holds(specific)])


_COMPLETE_SENTENCE = re.compile(r"[.!?](?:[\"')\]]*)\s+|\n")


def split_complete(text: str) -> tuple[list[str], str]:
    """Complete sentences (each with its trailing space) and the unfinished rest, for streaming:
    a sentence is shown only once it has ended and passed the check."""
    done: list[str] = []
    start = 0
    for match in _COMPLETE_SENTENCE.finditer(text):
        # "$12.95" and "e.g. " must not end a sentence: a period needs a following space, and the
        # character before it must not be a lone initial-like abbreviation.
        candidate = text[start:match.end()]
        if re.search(r"\b(?:e\.g|i\.e|etc|vs|approx|no|st|mr|mrs|dr)\.\s+$", candidate, re.I):
            continue
        done.append(candidate)
        start = match.end()
    return done, text[start:]
