"""A database that is briefly unreachable (restart, failover) answers 503, not a traceback.

Pages get templates/503.html, /v1 the OpenAI error shape, other JSON endpoints the {"error", "code"}
shape the widget endpoints use; all with Retry-After. A socket frame gets an `error` frame with the same
code and the socket stays open (core/consumers.py). Nothing is kept across requests: Django opens
a connection per request (and checks persistent ones first, CONN_HEALTH_CHECKS), so the site recovers
by itself on the first request after the database is back.

A database error raised in a view reaches `process_exception`. One raised in an inner middleware (the
session or active-organization lookup) is turned into a 500 by Django before this middleware sees it,
so the `got_request_exception` receiver marks the request and `__call__` swaps that 500 for the 503.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
MESSAGE = "The database is unavailable for a moment. Please retry in a few seconds."
CODE = "database_unavailable"
RETRY_AFTER_SECONDS = 5
_MARK = "_database_unavailable"


def is_outage(error: BaseException) -> bool:
    """The one rule for "the database is unreachable for a moment" (pages, /v1, JSON endpoints, sockets)."""
    return isinstance(error, DATABASE_ERRORS)


def unavailable_frame(**extra: object) -> dict:
    """What a socket consumer answers a frame it could not handle for that reason (core/consumers.py)."""
    return {"type": "error", "code": CODE, "message": MESSAGE, **extra}


def wants_json(request: HttpRequest) -> bool:
    path = request.path
    if path.startswith("/v1/") or path.rstrip("/").endswith("json"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """Built without the database: no context processors, no session, no user."""
    response: HttpResponse
    if request.path.startswith("/v1/"):
        response = JsonResponse({"error": {"message": MESSAGE, "type": "server_error", "param": None,
                                           "code": CODE}}, status=503)
    elif wants_json(request):
        response = JsonResponse({"error": MESSAGE, "code": CODE}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html", {"message": MESSAGE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


@receiver(got_request_exception, dispatch_uid="core.db_outage.mark")
def _mark_database_errors(sender: object, request: HttpRequest | None = None, **_: object) -> None:
    # Sent from inside Django's `except` block, so the exception is the one being handled.
    error = sys.exc_info()[1]
    if request is not None and error is not None and is_outage(error):
        setattr(request, _MARK, True)


class DatabaseOutageMiddleware:
    """First in MIDDLEWARE, so it wraps everything that may touch the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, _MARK, False) and response.status_code == 500:
            return unavailable_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        return unavailable_response(request)
