"""Chat completion requests of the /v1 API: every OpenAI option checked (and refused by name when we do not
implement it) and turned into engine settings; inference errors as API errors. The reply itself is
served by knowledge/replies.py, the same for the API, the playground and the widget."""

from __future__ import annotations

import logging

from core.bounds import MAX_TOKENS
from store.api.errors import ApiError, bad_request, unavailable
from store.api.protocol import UNSUPPORTED, ChatCompletionRequest
from store.api.targets import Target
from store.inference.client import InferenceError, InferenceUnavailable, new_request_id
from store.inference.protocol import GenerationRequest
from upstreams.client import UpstreamFailure

logger = logging.getLogger(__name__)

MAX_STOP_SEQUENCES = 4
DEFAULT_MAX_TOKENS = 256
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def check_options(body: ChatCompletionRequest) -> None:
    """Reject every option we do not implement, naming it."""
    for name in body.model_extra or {}:
        if name in UNSUPPORTED:
            if name == "response_format" and (body.model_extra or {}).get(name) in (None, {"type": "text"}):
                continue
            if name == "parallel_tool_calls" and "tools" not in (body.model_extra or {}):
                continue
            if name == "service_tier" and (body.model_extra or {}).get(name) in (None, "auto", "default"):
                continue
            raise bad_request(UNSUPPORTED[name], param=name, code="unsupported_parameter")
        raise bad_request(f"Unrecognized request argument supplied: {name}", param=name)
    if body.n not in (None, 1):
        raise bad_request("Only n=1 is supported.", param="n", code="unsupported_parameter")
    if body.logprobs:
        raise bad_request("logprobs are not supported.", param="logprobs", code="unsupported_parameter")


def normalize_messages(body: ChatCompletionRequest) -> list[dict]:
    messages = []
    for index, message in enumerate(body.messages):
        role = ROLES.get(message.role)
        if role is None:
            raise bad_request(f"Role {message.role!r} is not supported (use system, user or assistant).",
                              param=f"messages[{index}].role", code="unsupported_parameter")
        content = message.content
        if isinstance(content, list):
            texts = []
            for part_index, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise bad_request(f"Content parts of type {part.type!r} are not supported (text only).",
                                      param=f"messages[{index}].content[{part_index}]", code="unsupported_parameter")
                texts.append(part.text)
            content = "".join(texts)
        if content is None:
            raise bad_request("Each message needs text content.", param=f"messages[{index}].content")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise bad_request("The conversation needs at least one user message.", param="messages")
    return messages


def with_system_prompt(messages: list[dict], system_prompt: str) -> list[dict]:
    """The deployment's system prompt always goes first (SmolLM2 otherwise invents its own identity);
    system messages from the caller are appended to it."""
    own = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    system = "\n\n".join(part for part in [system_prompt, *own] if part)
    return ([{"role": "system", "content": system}] if system else []) + rest


def build_request(target: Target, body: ChatCompletionRequest) -> GenerationRequest:
    if target.task != "dialogue":
        raise bad_request(f"`{target.model_id}` is a {target.task} model; use /v1/sentiment.", param="model")
    if target.paused:
        raise ApiError(409, f"The deployment `{target.model_id}` is paused.", param="model", code="deployment_paused")
    check_options(body)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_SEQUENCES or any(not s for s in stop):
        raise bad_request(f"stop takes up to {MAX_STOP_SEQUENCES} non-empty strings.", param="stop")
    max_tokens = body.max_completion_tokens or body.max_tokens or target.max_tokens or DEFAULT_MAX_TOKENS
    if not MAX_TOKENS.contains(max_tokens):  # a deployment's own default is bounded here too
        raise bad_request(MAX_TOKENS.message(), param="max_tokens")
    temperature = body.temperature if body.temperature is not None else (
        target.temperature if target.temperature is not None else 0.7)
    top_p = body.top_p if body.top_p is not None else (target.top_p if target.top_p is not None else 1.0)
    return GenerationRequest(
        request_id=new_request_id(), model_key=target.model_key,
        messages=with_system_prompt(normalize_messages(body), target.system_prompt),
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=body.seed,
        frequency_penalty=body.frequency_penalty or 0.0, presence_penalty=body.presence_penalty or 0.0,
    )


def inference_error(error: Exception) -> ApiError:
    if isinstance(error, InferenceUnavailable):
        return unavailable(str(error))
    assert isinstance(error, InferenceError)
    if isinstance(error, UpstreamFailure):  # a hosted model's upstream failed: its own status (429, 502, 504)
        return ApiError(error.status, error.message, type="server_error" if error.status >= 500 else "upstream_error",
                        code=error.code, headers={"Retry-After": str(error.retry_after)} if error.retry_after else None)
    if error.code == "context_length_exceeded":
        return bad_request(error.message, param="messages", code="context_length_exceeded")
    if error.code == "model_not_found":
        return ApiError(404, error.message, param="model", code="model_not_found")
    if error.code in ("does_not_fit", "timeout", "expired"):
        return ApiError(503, error.message, type="server_error", code=error.code, headers={"Retry-After": "5"})
    return ApiError(500, f"Inference failed: {error.message}", type="server_error", code=error.code)


def stream_error(error: Exception) -> dict:
    """The event that ends a /v1 stream whose reply failed after the headers were sent (then `data: [DONE]`):
    OpenAI's error shape, as the SDKs raise it. Failures other than inference ones are logged, not shown."""
    if isinstance(error, InferenceError | InferenceUnavailable):
        api_error = inference_error(error)
    else:
        logger.error("a streamed reply failed", exc_info=error)
        api_error = ApiError(500, "The reply failed on the server; retry.", type="server_error", code="internal")
    return {"error": {"message": api_error.message, "type": api_error.type, "param": api_error.param,
                      "code": api_error.code}}
