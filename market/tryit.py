"""Public try-it: any signed-in person tries a public listing's latest version on its page.

Billed to nobody (no usage row is written: neither the publisher nor the visitor pays), so it is kept
small: replies are capped at TRY_IT_MAX_TOKENS and every user and every listing has its own per-minute
bucket in Redis (shared by all web processes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from core import ratelimit
from core.bounds import (
    TRY_IT_MAX_TOKENS,
    TRY_IT_MESSAGE_CHARS,
    TRY_IT_PER_LISTING_PER_MINUTE,
    TRY_IT_PER_USER_PER_MINUTE,
)
from core.text import text_problem
from market.models import Listing, ListingVersion
from store.api.completions import with_system_prompt
from store.inference.client import classify, new_request_id, stream_generation
from store.inference.protocol import ClassificationRequest, GenerationRequest
from store.models import DEFAULT_SYSTEM_PROMPT, Task, engine_key


class TryItRefused(Exception):
    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass
class TryItAnswer:
    text: str
    finish_reason: str = "stop"


def check_message(message: str) -> str:
    message = message.strip()
    if not TRY_IT_MESSAGE_CHARS.contains(len(message)):
        raise TryItRefused(400, f"Type a message of {TRY_IT_MESSAGE_CHARS.low} to {TRY_IT_MESSAGE_CHARS.high} "
                                "characters.")
    problem = text_problem(message)
    if problem:
        raise TryItRefused(400, problem)
    return message


async def take_turn(user_id: int, listing_id: int) -> None:
    """One try from both buckets, or from neither; TryItRefused(429) names which one is empty."""
    allowed, refused_by, retry = await ratelimit.take_all([
        (f"market:try:user:{user_id}", TRY_IT_PER_USER_PER_MINUTE),
        (f"market:try:listing:{listing_id}", TRY_IT_PER_LISTING_PER_MINUTE)])
    if not allowed:
        who = "You have" if refused_by == 0 else "This model has"
        raise TryItRefused(429, f"{who} reached the try-it limit; try again in {retry} s.", retry)


async def answer(listing: Listing, version: ListingVersion, message: str) -> TryItAnswer:
    """The latest version's reply (dialogue) or label (sentiment) to `message`. Never metered."""
    tuned = version.tuned_model
    key = engine_key(tuned.task, tuned_id=tuned.pk)
    if listing.task == Task.SENTIMENT:
        result = await classify(ClassificationRequest(request_id=new_request_id(), model_key=key, texts=[message]))
        row = result["results"][0]
        return TryItAnswer(f"{row['label']} ({row['score']:.2f})")
    if listing.task != Task.DIALOGUE:
        raise TryItRefused(400, "Embedding models have nothing to try here; install one and call /v1/embeddings.")
    request = GenerationRequest(
        request_id=new_request_id(), model_key=key, max_tokens=TRY_IT_MAX_TOKENS, temperature=0.3,
        messages=with_system_prompt([{"role": "user", "content": message}],
                                    tuned.default_system_prompt or DEFAULT_SYSTEM_PROMPT))
    text, finish = "", "stop"
    async with contextlib.aclosing(stream_generation(request)) as stream:
        async for event in stream:
            if event.kind == "done":
                info = event.info or {}
                text, finish = info.get("text", text), info.get("finish_reason") or finish
            elif event.kind == "text":
                text += event.text
    return TryItAnswer(text.strip(), "length" if finish == "length" else "stop")
