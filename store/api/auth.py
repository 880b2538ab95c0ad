"""Key authentication, request rate limits and error handling for every /v1 endpoint."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ValidationError

from core import ratelimit
from store.api.errors import ApiError
from store.api_keys import authenticate
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


def api_view(methods: tuple[str, ...] = ("GET",)) -> Callable[[AsyncView], AsyncView]:
    """Authenticate the key, take one request from its per-minute budget, render ApiErrors."""

    def decorator(view: AsyncView) -> AsyncView:
        @csrf_exempt
        @wraps(view)
        async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise ApiError(405, f"Method {request.method} is not allowed here; use {' or '.join(methods)}.",
                                   code="method_not_allowed")
                key = await authenticate_request(request)
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


def parse_json(request: HttpRequest, schema: type[BaseModel]):
    body = read_body(request)
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"We could not parse the JSON body of your request ({error}).") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            raise ApiError(400, f"Unrecognized request argument supplied: {param}", param=param) from None
        if first["type"] == "missing":
            raise ApiError(400, f"Missing required parameter: '{param}'.", param=param) from None
        raise ApiError(400, f"Invalid value for '{param}': {first['msg']}.", param=param) from None


def json_response(payload: BaseModel | dict, status: int = 200) -> JsonResponse:
    data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
