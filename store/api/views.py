"""/v1 endpoints owned by the store: models, chat completions, sentiment."""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from core import ratelimit
from store.api.auth import api_view, json_response, parse_json
from store.api.completions import build_request, completion_id, inference_error, sse_stream
from store.api.errors import ApiError, bad_request
from store.api.protocol import ChatCompletionRequest, ModelList, ModelObject, SentimentRequest
from store.api.targets import Target, afind_target, avisible_targets
from store.serving.client import InferenceError, InferenceUnavailable, classify, generate, new_request_id
from store.serving.protocol import ClassificationRequest
from store.usage import record_usage

MAX_SENTIMENT_INPUTS = 256
MAX_SENTIMENT_CHARS = 10_000


def model_object(target: Target) -> ModelObject:
    return ModelObject(id=target.model_id, created=target.created, owned_by=target.owned_by,
                       kind=target.kind,  # type: ignore[arg-type]  # one of the three, by construction
                       task=target.task, root=target.root, parent=target.parent)


@api_view(("GET",))
async def list_models(request: HttpRequest) -> HttpResponseBase:
    targets = await avisible_targets(request.api_key)  # type: ignore[attr-defined]
    return json_response(ModelList(data=[model_object(t) for t in targets]))


@api_view(("GET",))
async def retrieve_model(request: HttpRequest, model_id: str) -> HttpResponseBase:
    return json_response(model_object(await afind_target(request.api_key, model_id)))  # type: ignore[attr-defined]


async def _check_token_budget(key) -> None:
    decision = await ratelimit.tokens_available(key.prefix, key.tokens_per_minute)
    if not decision.allowed:
        raise ApiError(429, f"Rate limit reached for tokens on key {key.prefix}: {key.tokens_per_minute} per minute. "
                            f"Try again in {decision.retry_after} s.", type="tokens", code="rate_limit_exceeded",
                       headers={"Retry-After": str(decision.retry_after)})


def _meter(key, model_id: str):
    async def on_done(result: dict) -> None:
        prompt, completion = result.get("prompt_tokens", 0), result.get("completion_tokens", 0)
        await ratelimit.charge_tokens(key.prefix, key.tokens_per_minute, prompt + completion)
        await sync_to_async(record_usage)(key.organization_id, model_id, prompt, completion, api_key=key)

    return on_done


@api_view(("POST",))
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    key = request.api_key  # type: ignore[attr-defined]
    body = parse_json(request, ChatCompletionRequest)
    target = await afind_target(key, body.model)
    engine_request = build_request(target, body)
    await _check_token_budget(key)
    on_done = _meter(key, target.model_id)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        response = StreamingHttpResponse(sse_stream(engine_request, target.model_id, include_usage, on_done),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
        return response
    try:
        result = await generate(engine_request)
    except (InferenceError, InferenceUnavailable) as error:
        raise inference_error(error) from None
    await on_done(result)
    prompt, completion = result.get("prompt_tokens", 0), result.get("completion_tokens", 0)
    finish_reason = "length" if result.get("finish_reason") == "length" else "stop"
    return json_response({
        "id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": target.model_id,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.get("text", ""), "refusal": None},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    })


@api_view(("POST",))
async def sentiment(request: HttpRequest) -> HttpResponseBase:
    key = request.api_key  # type: ignore[attr-defined]
    body = parse_json(request, SentimentRequest)
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise bad_request("input must be a non-empty string or list of strings.", param="input")
    if len(texts) > MAX_SENTIMENT_INPUTS:
        raise ApiError(413, f"Too many inputs: {len(texts)} (at most {MAX_SENTIMENT_INPUTS} per request).",
                       param="input", code="request_too_large")
    for index, text in enumerate(texts):
        if not text.strip():
            raise bad_request("Inputs must not be empty.", param=f"input[{index}]")
        if len(text) > MAX_SENTIMENT_CHARS:
            raise ApiError(413, f"input[{index}] is {len(text)} characters (at most {MAX_SENTIMENT_CHARS}).",
                           param=f"input[{index}]", code="request_too_large")
    target = await afind_target(key, body.model)
    if target.task != "sentiment" or target.kind == "base":
        raise bad_request(f"`{target.model_id}` is not a tuned sentiment model: tune a base model on labelled "
                          "texts first, then call the tuned model or its deployment.", param="model")
    if target.paused:
        raise ApiError(409, f"The deployment `{target.model_id}` is paused.", param="model", code="deployment_paused")
    await _check_token_budget(key)
    try:
        result = await classify(ClassificationRequest(request_id=new_request_id(), model_key=target.model_key,
                                                      texts=texts))
    except (InferenceError, InferenceUnavailable) as error:
        raise inference_error(error) from None
    prompt_tokens = result.get("prompt_tokens", 0)
    await _meter(key, target.model_id)({"prompt_tokens": prompt_tokens, "completion_tokens": 0})
    return json_response({
        "object": "list", "model": target.model_id,
        "data": [{"index": i, "label": r["label"], "score": r["score"], "scores": r["scores"]}
                 for i, r in enumerate(result["results"])],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens},
    })


async def not_found(request: HttpRequest, path: str = "") -> HttpResponseBase:
    return ApiError(404, f"Unknown API route: {request.method} {request.path}", code="unknown_url").response()
