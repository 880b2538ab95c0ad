"""/v1 endpoints owned by the store: models, embeddings, sentiment. (Chat completions are served by
knowledge/api.py: a deployment may answer from its knowledge base.)"""

from __future__ import annotations

import base64

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponseBase

from core import ratelimit
from store.api.auth import api_view, json_response, parse_json
from store.api.completions import inference_error
from store.api.errors import ApiError, bad_request
from store.api.protocol import EmbeddingsRequest, ModelList, ModelObject, SentimentRequest
from store.api.targets import Target, afind_target, avisible_targets
from store.inference.client import InferenceError, InferenceUnavailable, classify, embed, new_request_id
from store.inference.protocol import ClassificationRequest, EmbeddingRequest, unpack_vectors
from store.models import Task
from store.usage import record_usage

MAX_SENTIMENT_INPUTS = 256
MAX_SENTIMENT_CHARS = 10_000


def model_object(target: Target) -> ModelObject:
    return ModelObject(id=target.model_id, created=target.created, owned_by=target.owned_by,
                       kind=target.kind,  # type: ignore[arg-type]  # one of the three, by construction
                       task=target.task, root=target.root, parent=target.parent)


@api_view(("GET",), restricted_keys=True)
async def list_models(request: HttpRequest) -> HttpResponseBase:
    targets = await avisible_targets(request.api_key)  # type: ignore[attr-defined]
    return json_response(ModelList(data=[model_object(t) for t in targets]))


@api_view(("GET",), restricted_keys=True)
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


MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_CHARS = 20_000


@api_view(("POST",), restricted_keys=True)
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    """OpenAI's embeddings endpoint: float lists, or base64 of little-endian float32 (the SDKs' default)."""
    key = request.api_key  # type: ignore[attr-defined]
    body = parse_json(request, EmbeddingsRequest)
    if isinstance(body.input, str):
        texts = [body.input]
    elif all(isinstance(item, str) for item in body.input):
        texts = list(body.input)  # type: ignore[arg-type]
    else:
        raise bad_request("Token arrays are not supported: send the input as text.", param="input",
                          code="unsupported_parameter")
    if not texts:
        raise bad_request("input must be a non-empty string or list of strings.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise ApiError(413, f"Too many inputs: {len(texts)} (at most {MAX_EMBEDDING_INPUTS} per request).",
                       param="input", code="request_too_large")
    for index, text in enumerate(texts):
        if not text.strip():
            raise bad_request("Inputs must not be empty.", param=f"input[{index}]")
        if len(text) > MAX_EMBEDDING_CHARS:
            raise ApiError(413, f"input[{index}] is {len(text)} characters (at most {MAX_EMBEDDING_CHARS}).",
                           param=f"input[{index}]", code="request_too_large")
    target = await afind_target(key, body.model)
    if target.task != Task.EMBEDDING:
        raise bad_request(f"`{target.model_id}` does not make embeddings (it is a {target.task} model); use an "
                          "embedding model such as all-minilm-l6-v2.", param="model")
    if target.paused:
        raise ApiError(409, f"The deployment `{target.model_id}` is paused.", param="model", code="deployment_paused")
    await _check_token_budget(key)
    try:
        result = await embed(EmbeddingRequest(request_id=new_request_id(), model_key=target.model_key, texts=texts))
    except (InferenceError, InferenceUnavailable) as error:
        api_error = inference_error(error)
        if api_error.code == "context_length_exceeded":
            api_error.param = "input"
        raise api_error from None
    if body.dimensions is not None and body.dimensions != int(result["dim"]):
        raise bad_request(f"`{target.model_id}` makes {result['dim']}-dimensional embeddings; it cannot shorten "
                          f"them to {body.dimensions}.", param="dimensions", code="unsupported_parameter")
    prompt_tokens = int(result.get("prompt_tokens", 0))
    await _meter(key, target.model_id)({"prompt_tokens": prompt_tokens, "completion_tokens": 0})
    if body.encoding_format == "base64":
        width = int(result["dim"]) * 4
        raw = result["vectors"]
        vectors: list = [base64.b64encode(raw[i * width:(i + 1) * width]).decode() for i in range(len(texts))]
    else:
        vectors = unpack_vectors(result)
    return json_response({
        "object": "list", "model": target.model_id,
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })


@api_view(("POST",), restricted_keys=True)
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
