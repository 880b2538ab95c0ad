"""Generate with an organization's OpenAI-compatible upstream, from the web process (no worker).

`stream_upstream` speaks the same events as store.inference.client.stream_generation (`start`, `text`, then `done`
with text, finish_reason and token counts), so knowledge/replies.py serves an upstream deployment exactly like an
own model: knowledge, the faithfulness check, metering, the widget's handoff. Every failure (refused connection,
timeout, an upstream 429 or error status, a body that is not the OpenAI format) is an UpstreamFailure: an
InferenceError carrying the HTTP status our /v1 answers with, which the widget treats like a missing worker
(it hands the conversation over).

Metering: the upstream's own `usage` (we ask for it with stream_options.include_usage); when it reports none, the
tokens are estimated as characters / 4, rounded up (the web process has no tokenizer), and `usage_source` says so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator

import httpx2
from asgiref.sync import sync_to_async

from core import bounds
from store.inference.client import InferenceError, StreamEvent
from store.inference.protocol import GenerationRequest
from upstreams.models import UpstreamModel
from upstreams.secrets import UnreadableSecret, decrypt

CHARS_PER_TOKEN = 4
MAX_MESSAGE_CHARS = 300  # of an upstream's own error message, passed on to our caller
MAX_REPORTED_TOKENS = 10_000_000  # an upstream's usage above this is not believed: we estimate instead


class UpstreamFailure(InferenceError):
    """The upstream did not answer properly; `status` is what our /v1 answers."""

    def __init__(self, code: str, message: str, status: int = 502, retry_after: int | None = None) -> None:
        super().__init__(code, message)
        self.status, self.retry_after = status, retry_after


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _payload(upstream: UpstreamModel, request: GenerationRequest) -> dict:
    payload: dict = {"model": upstream.model_name, "messages": request.messages, "max_tokens": request.max_tokens,
                     "temperature": request.temperature, "top_p": request.top_p, "stream": True,
                     "stream_options": {"include_usage": True}}
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.seed is not None:
        payload["seed"] = request.seed
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name):
            payload[name] = getattr(request, name)
    return payload


def _load(upstream_id: int) -> tuple[UpstreamModel, str]:
    upstream = UpstreamModel.objects.filter(pk=upstream_id).first()
    if upstream is None:
        raise UpstreamFailure("model_not_found", "This deployment's upstream was deleted.", status=404)
    try:
        return upstream, decrypt(upstream.api_key_encrypted) if upstream.api_key_encrypted else ""
    except UnreadableSecret as error:
        raise UpstreamFailure("upstream_key_unreadable", str(error)) from None


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = message if isinstance(message, str) else body.decode("utf-8", "replace")
    return " ".join(text.split())[:MAX_MESSAGE_CHARS]


def _retry_after(value: str | None) -> int:
    try:
        return max(1, min(int(float(value or 5)), 60))
    except ValueError:
        return 5


async def _status_failure(response: httpx2.Response, name: str) -> UpstreamFailure:
    body = b""
    async for part in response.aiter_bytes():
        body += part
        if len(body) > 4096:
            break
    detail = _error_message(body)
    if response.status_code == 429:
        wait = _retry_after(response.headers.get("retry-after"))
        return UpstreamFailure("upstream_rate_limited", f"The upstream {name} is rate limiting us (HTTP 429): "
                               f"{detail or 'no detail'}. Try again in {wait} s.", status=429, retry_after=wait)
    if response.status_code in (401, 403):
        return UpstreamFailure("upstream_auth", f"The upstream {name} refused our API key (HTTP "
                               f"{response.status_code}): {detail}. An admin must update the upstream's key.")
    return UpstreamFailure("upstream_error", f"The upstream {name} answered HTTP {response.status_code}: "
                           f"{detail or 'no detail'}.")


async def _lines(response: httpx2.Response, deadline: float) -> AsyncIterator[str]:
    """The body's lines, each bounded in length; the whole reply bounded in time."""
    pending = b""
    async for part in response.aiter_bytes():
        if time.monotonic() > deadline:
            raise TimeoutError
        pending += part
        *lines, pending = pending.split(b"\n")
        if len(pending) > bounds.UPSTREAM_LINE_BYTES:
            raise ValueError("a line of the reply is too long")
        for line in lines:
            yield line.decode("utf-8").rstrip("\r")
    if pending:
        yield pending.decode("utf-8").rstrip("\r")


def _choice_of(chunk: object) -> tuple[str, str | None, dict | None]:
    """(text, finish_reason, usage) of one chat.completion(.chunk); ValueError when it is not that shape."""
    if not isinstance(chunk, dict):
        raise ValueError("an event is not a JSON object")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamFailure("upstream_error", f"The upstream reported an error: {str(message)[:MAX_MESSAGE_CHARS]}")
    usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ValueError("an event has no `choices` list")
    if not choices:
        return "", None, usage
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ValueError("a choice is not a JSON object")
    part = choice.get("delta") if "delta" in choice else choice.get("message")
    text = part.get("content") if isinstance(part, dict) else None
    if text is not None and not isinstance(text, str):
        raise ValueError("a choice's content is not text")
    finish = choice.get("finish_reason")
    return text or "", finish if isinstance(finish, str) else None, usage


async def _events(response: httpx2.Response, deadline: float) -> AsyncIterator[tuple[str, str | None, dict | None]]:
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        # A server that ignores `stream` answers one chat.completion.
        body = b"".join([part async for part in response.aiter_bytes()])
        yield _choice_of(json.loads(body))
        return
    async for line in _lines(response, deadline):
        if not line.startswith("data:"):
            continue  # comments, event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        yield _choice_of(json.loads(data))


def _count(value: object) -> bool:
    """A token count we can bill: a non-negative integer within reason (not a bool, not a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPORTED_TOKENS


async def stream_upstream(upstream_id: int, request: GenerationRequest) -> AsyncGenerator[StreamEvent, None]:
    upstream, api_key = await sync_to_async(_load)(upstream_id)
    name = f"`{upstream.name}`"
    timeout = httpx2.Timeout(bounds.UPSTREAM_READ_SECONDS, connect=bounds.UPSTREAM_CONNECT_SECONDS)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + bounds.UPSTREAM_REPLY_SECONDS
    text, finish, usage = "", None, None
    try:
        async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False) as client, client.stream(
                "POST", upstream.base_url.rstrip("/") + "/chat/completions", json=_payload(upstream, request),
                headers=headers) as response:
            if response.status_code != 200:
                raise await _status_failure(response, name)
            yield StreamEvent("start", info={"upstream": upstream.pk})
            async for piece, finish_reason, usage_now in _events(response, deadline):
                usage = usage_now or usage
                finish = finish_reason or finish
                if piece:
                    text += piece
                    yield StreamEvent("text", piece)
    except (httpx2.TimeoutException, TimeoutError):
        raise UpstreamFailure("upstream_timeout", f"The upstream {name} did not answer in time (connect "
                              f"{bounds.UPSTREAM_CONNECT_SECONDS:g} s, between pieces {bounds.UPSTREAM_READ_SECONDS:g}"
                              f" s, whole reply {bounds.UPSTREAM_REPLY_SECONDS:g} s).", status=504) from None
    except httpx2.ConnectError:
        raise UpstreamFailure("upstream_unreachable", f"Could not connect to the upstream {name}; it may be down. "
                              "Retry later.", status=502) from None
    except httpx2.TransportError as error:
        raise UpstreamFailure("upstream_unreachable", f"The connection to the upstream {name} failed: "
                              f"{type(error).__name__}.", status=502) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise UpstreamFailure("upstream_bad_response", f"The upstream {name} sent a reply that is not the OpenAI "
                              f"chat completions format ({str(error)[:120]}).", status=502) from None
    prompt_chars = "".join(str(m.get("content", "")) for m in request.messages)
    if usage is not None and all(_count(usage.get(k)) for k in ("prompt_tokens", "completion_tokens")):
        tokens, source = (usage["prompt_tokens"], usage["completion_tokens"]), "upstream"
    else:
        tokens, source = (estimate_tokens(prompt_chars), estimate_tokens(text)), "estimated"
    yield StreamEvent("done", info={"text": text, "finish_reason": "length" if finish == "length" else "stop",
                                    "prompt_tokens": tokens[0], "completion_tokens": tokens[1],
                                    "usage_source": source})
