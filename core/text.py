"""Text validity, decided in one place: what text the product accepts at its edges.

Lone surrogates ("\\ud800" in JSON) cannot be encoded to UTF-8, so they crash the database, the
tokenizer and the JSON encoder far from where they came in; control characters other than tab and
line breaks have no business in a chat message or a prompt. Both are refused at the edge (a 400 on
HTTP, an `error` frame on a socket) with a message that names the problem.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls except \t \n \r, DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class InvalidText(ValueError):
    """Text the product refuses; the message is safe to show to the client."""


def text_problem(text: str) -> str | None:
    """Why this text is refused, or None when it is fine."""
    if _SURROGATE.search(text):
        return "Text contains a lone UTF-16 surrogate (invalid Unicode); send valid UTF-8."
    match = _CONTROL.search(text)
    if match:
        return f"Text contains the control character U+{ord(match.group()):04X}; remove it."
    return None


def check_text(text: str) -> str:
    """The text itself when valid; InvalidText otherwise."""
    problem = text_problem(text)
    if problem:
        raise InvalidText(problem)
    return text


def find_text_problem(value: Any, *, depth: int = 0) -> str | None:
    """The first problem in any string inside a decoded JSON value (keys included), or None."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else None
            problem = problem or find_text_problem(item, depth=depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = find_text_problem(item, depth=depth + 1)
            if problem:
                return problem
    return None


# JSON nested deeper than this is refused before anything walks it (our payloads nest at most ~6 deep;
# Python's json module recurses, so an unbounded depth is a RecursionError, i.e. a 500).
MAX_JSON_DEPTH = 64


def _depth_exceeds(raw: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than limit (a linear scan; no recursion)."""
    depth, in_string, escaped = 0, False, False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def decode_json(raw: str | bytes) -> Any:
    """A JSON document from a client, refused with InvalidText when malformed, too deep or holding invalid text.

    The one decoder for request bodies and socket frames alike.
    """
    import json

    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidText("The body is not valid UTF-8.") from None
    if _depth_exceeds(raw, MAX_JSON_DEPTH):
        raise InvalidText(f"JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidText(f"Malformed JSON: {error}") from None
    problem = find_text_problem(value)
    if problem:
        raise InvalidText(problem)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
