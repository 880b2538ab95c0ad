"""Key authentication, request rate limits and error handling for every /v1 endpoint."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ValidationError

from core import ratelimit
from core.bounds import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE
from core.db_outage import DATABASE_ERRORS
from core.text import InvalidText, decode_json, text_problem
from store.api.errors import ApiError
from store.api_keys import authenticate, restricted_to
from store.models import ApiKey

logger = logging.getLogger(__name__)

MAX_JSON_BYTES = 2 * 1024 * 1024

# django-stubs types path() for sync views only; async views are wrapped as Any-returning callables.
AsyncView = Callable[..., Any]


def _mask(key: str) -> str:
    return f"{key[:9]}****{key[-4:]}" if len(key) > 16 else "****"


async def authenticate_request(request: HttpRequest) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "You didn't provide an API key. Send it in the Authorization header: "
                            "`Authorization: Bearer YOUR_KEY` (keys are created under Deployments → API keys).")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Malformed Authorization header: expected `Bearer YOUR_KEY`.", code="invalid_api_key")
    key = await sync_to_async(authenticate)(token.strip())
    if key is None:
        raise ApiError(401, f"Incorrect API key provided: {_mask(token.strip())}. It may have been revoked.",
                       code="invalid_api_key")
    return key


def rate_limit_headers(decision: ratelimit.Decision, kind: str) -> dict[str, str]:
    return {f"x-ratelimit-limit-{kind}": str(decision.limit), f"x-ratelimit-remaining-{kind}": str(decision.remaining)}


def refuse_restricted_key(key: ApiKey) -> None:
    """A key restricted to deployments may only call them (inference, and the models list that shows only
    them): files and fine-tuning belong to the whole organization."""
    deployments = restricted_to(key)
    if deployments:
        noun = "deployment" if len(deployments) == 1 else "deployments"
        raise ApiError(403, f"This API key is restricted to {noun} {', '.join(deployments)}: it may call only "
                            f"{'its' if len(deployments) == 1 else 'their'} models and inference endpoints. Use an "
                            "unrestricted key for files and fine-tuning.", code="restricted_key")


def refuse_unusable_limits(key: ApiKey) -> None:
    """A key whose limits lie outside the product's bounds (0 per minute, set before the bounds existed) refuses
    every request with a clear 429; the token bucket would otherwise divide by its zero refill rate."""
    for bound, value in ((REQUESTS_PER_MINUTE, key.requests_per_minute), (TOKENS_PER_MINUTE, key.tokens_per_minute)):
        if not bound.contains(value):
            raise ApiError(429, f"API key {key.prefix} is set to {value} {bound.name.replace('_', ' ')}, which refuses "
                                f"every request; an admin must change it ({bound.message()})",
                           type="requests", code="rate_limit_exceeded")


def api_view(methods: tuple[str, ...] = ("GET",), restricted_keys: bool = False) -> Callable[[AsyncView], AsyncView]:
    """Authenticate the key, take one request from its per-minute budget, render ApiErrors.

    restricted_keys: whether a key restricted to deployments may call this view (the inference endpoints and the
    models list, which reach models only through store/api/targets.py and so only its deployments).
    Every other view answers such a key 403 — decided here, for every /v1 endpoint.
    """

    def decorator(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise ApiError(405, f"Method {request.method} is not allowed here; use {' or '.join(methods)}.",
                                   code="method_not_allowed")
                key = await authenticate_request(request)
                if not restricted_keys:
                    await sync_to_async(refuse_restricted_key)(key)
                refuse_unusable_limits(key)
                decision = await ratelimit.take_request(key.prefix, key.requests_per_minute)
                if not decision.allowed:
                    raise ApiError(429, f"Rate limit reached for requests on key {key.prefix}: "
                                        f"{key.requests_per_minute} per minute. Try again in {decision.retry_after} s.",
                                   type="requests", code="rate_limit_exceeded",
                                   headers={"Retry-After": str(decision.retry_after),
                                            **rate_limit_headers(decision, "requests")})
                request.api_key = key  # type: ignore[attr-defined]
                response = await view(request, *args, **kwargs)
                for name, value in rate_limit_headers(decision, "requests").items():
                    response.setdefault(name, value)
                return response
            except ApiError as error:
                return error.response()
            except RequestDataTooBig:
                return ApiError(413, "Request body too large.", code="request_too_large").response()
            except (SuspiciousOperation, MultiPartParserError) as error:
                # Django refuses a form body it will not parse (too many fields or files, a broken part) only
                # when the view reads it; its message names the limit and is safe to show.
                return ApiError(400, f"The request body was refused: {error}").response()
            except DATABASE_ERRORS:
                raise  # the database is unreachable: core/db_outage.py answers 503 in this API's shape
            except Exception:
                logger.exception("unhandled error in %s", request.path)
                return ApiError(500, "The server had an error while processing your request.",
                                type="server_error", code="internal_error").response()

        return wrapper

    return decorator


def read_body(request: HttpRequest) -> bytes:
    too_large = ApiError(413, f"Request body too large (limit {MAX_JSON_BYTES} bytes).", code="request_too_large")
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_JSON_BYTES:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > MAX_JSON_BYTES:
        raise too_large
    return body


# Pydantic names the member of a union that failed ("int", "literal['auto']", "list[TextPart]", "TextPart"):
# not a part of the client's field path, so it is left out of `param`.
_UNION_MEMBER = re.compile(r"^(int|float|str|bool|none|constrained-\w+|function-\w+\[.*\]|(literal|list|dict)\[.*\]"
                           r"|[A-Z]\w*)$")


def field_path(loc: tuple | list) -> str | None:
    """OpenAI's way of naming a field: messages[0].content."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _UNION_MEMBER.match(str(part)):
            path += f".{part}" if path else str(part)
    return path or None


def _invalid_text_at(value: Any, loc: tuple = ()) -> tuple[tuple, str] | None:
    """Where in a decoded document the first refused string sits, and why."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (loc, problem) if problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and text_problem(key):
            return loc + (key,), text_problem(key) or ""
        found = _invalid_text_at(item, loc + (key,))
        if found:
            return found
    return None


def decode_body(body: bytes) -> Any:
    """The JSON document of a request, through core.text's one decoder; a 400 naming the problem (and the
    field, for text the product refuses) otherwise."""
    try:
        return decode_json(body or b"null")
    except InvalidText as error:
        located = None
        # Deep nesting and malformed JSON have no field to name (and must not recurse here either).
        with contextlib.suppress(ValueError, RecursionError):
            located = _invalid_text_at(json.loads(body))
        if located is not None:
            param = field_path(located[0])
            raise ApiError(400, f"Invalid value for '{param}': {located[1]}", param=param,
                           code="invalid_text") from None
        raise ApiError(400, f"We could not parse the JSON body of your request: {error}") from None


def parse_json(request: HttpRequest, schema: type[BaseModel]):
    data = decode_body(read_body(request))
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        # Strict: a JSON string is not a boolean or a number ("stream": "yes" is refused, not read as true).
        return schema.model_validate(data, strict=True)
    except ValidationError as error:
        first = error.errors()[0]
        param = field_path(first["loc"])
        if first["type"] == "extra_forbidden":
            raise ApiError(400, f"Unrecognized request argument supplied: {param}", param=param) from None
        if first["type"] == "missing":
            raise ApiError(400, f"Missing required parameter: '{param}'.", param=param) from None
        message = str(first.get("ctx", {}).get("error", "")) if first["type"] == "value_error" else first["msg"]
        raise ApiError(400, f"Invalid value for '{param}': {message.rstrip('.')}.", param=param) from None


def json_response(payload: BaseModel | dict, status: int = 200) -> JsonResponse:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
