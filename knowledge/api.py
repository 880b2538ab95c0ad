"""`POST /v1/chat/completions`: a deployment answers through knowledge/replies.py, as in the widget.

The response is OpenAI's, plus two fields every SDK keeps and exposes (`model_extra` in Python,
plain properties in JavaScript): `citations` (the passages the reply is from: title, url,
confidence) and `grounding` (`outcome`: quoted, grounded, replaced, did_not_know, not_sure, small_talk
or generated, and `confidence`). A stream carries them on its last chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from core import ratelimit
from knowledge.replies import ReplyEvent, ReplyResult, Sampling, Served, stream_reply
from store.api.auth import api_view, json_response, parse_json
from store.api.completions import build_request, inference_error, normalize_messages, stream_error
from store.api.errors import ApiError
from store.api.protocol import ChatCompletionRequest
from store.api.targets import Target, afind_target
from store.inference.client import InferenceError, InferenceUnavailable


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def usage_of(result: ReplyResult) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def extras(result: ReplyResult) -> dict:
    return {"citations": result.citations, "grounding": result.grounding()}


async def reply_sse(events: AsyncIterator[ReplyEvent], model_id: str, include_usage: bool,
                    on_done: Callable[[ReplyResult], Awaitable[None]] | None = None) -> AsyncIterator[bytes]:
    """OpenAI's streaming format (chat.completion.chunk events, then `data: [DONE]`); a failure mid-stream
    becomes an error event, then `data: [DONE]`. If the client leaves, Daphne cancels this generator and closing
    `events` stops the generation on the worker."""
    ident, created = completion_id(), int(time.time())

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> dict:
        return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}

    try:
        yield _sse(chunk({"role": "assistant", "content": ""}))
        async for event in events:
            if event.kind == "text" and event.text:
                yield _sse(chunk({"content": event.text}))
            elif event.kind == "done" and event.result is not None:
                result = event.result
                yield _sse(chunk({}, result.finish_reason, **extras(result)))
                if include_usage:
                    yield _sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model_id,
                                "choices": [], "usage": usage_of(result), "system_fingerprint": None})
                if on_done is not None:
                    await on_done(result)
        yield _sse("[DONE]")
    except Exception as error:  # the headers are sent: an error event is the only way left to say it
        yield _sse(stream_error(error))
        yield _sse("[DONE]")
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def completion_body(result: ReplyResult, model_id: str) -> dict:
    return {
        "id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model_id,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text, "refusal": None},
                     "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": usage_of(result), **extras(result),
    }


def streaming_response(chunks: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return response


def served_target(target: Target, organization_id: int) -> Served:
    if target.deployment is not None:
        return Served.deployment(target.deployment)
    return Served(organization_id, target.model_id, target.model_key, target.system_prompt)


async def _check_token_budget(key) -> None:
    decision = await ratelimit.tokens_available(key.prefix, key.tokens_per_minute)
    if not decision.allowed:
        raise ApiError(429, f"Rate limit reached for tokens on key {key.prefix}: {key.tokens_per_minute} per minute. "
                            f"Try again in {decision.retry_after} s.", type="tokens", code="rate_limit_exceeded",
                       headers={"Retry-After": str(decision.retry_after)})


@api_view(("POST",), restricted_keys=True)
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    key = request.api_key  # type: ignore[attr-defined]
    body = parse_json(request, ChatCompletionRequest)
    target = await afind_target(key, body.model)
    checked = build_request(target, body)  # every option validated (and refused by name) in one place
    await _check_token_budget(key)
    sampling = Sampling(max_tokens=checked.max_tokens, temperature=checked.temperature, top_p=checked.top_p,
                        stop=checked.stop, seed=checked.seed, frequency_penalty=checked.frequency_penalty,
                        presence_penalty=checked.presence_penalty)

    async def charge(result: ReplyResult) -> None:
        tokens = result.prompt_tokens + result.completion_tokens
        await ratelimit.charge_tokens(key.prefix, key.tokens_per_minute, tokens)

    events = stream_reply(served_target(target, key.organization_id), normalize_messages(body), source="api",
                          api_key=key, sampling=sampling)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return streaming_response(reply_sse(events, target.model_id, include_usage, charge))
    result = None
    try:
        async for event in events:
            if event.kind == "done":
                result = event.result
    except (InferenceError, InferenceUnavailable) as error:
        raise inference_error(error) from None
    if result is None:
        raise ApiError(500, "The reply ended without a result.", type="server_error", code="internal")
    await charge(result)
    return json_response(completion_body(result, target.model_id))
