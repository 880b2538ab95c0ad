"""Headers Django's SecurityMiddleware does not set: a Content-Security-Policy on the site's pages, and
nosniff on /static/ (which Daphne serves outside the middleware stack).
"""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

CSP = "Content-Security-Policy"


def site_policy(request: HttpRequest) -> str:
    """What the templates need, nothing more.

    Scripts: only files from /static/ — no inline <script>, no on*= handler, no eval (pages ask for
    behaviour with data- attributes that core/behaviours.js reads, and htmx runs with allowEval off);
    tests/core/test_templates_csp.py keeps the templates that way. Styles: templates still use style="…"
    attributes, hence 'unsafe-inline' for styles only. Sockets: live.js and console.js connect to this
    host (ws:/wss: are listed because older browsers do not count them as 'self').
    """
    host = request.get_host()
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",  # no remote images: a model card cannot track who reads it
        f"connect-src 'self' ws://{host} wss://{host}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Every response gets the site policy unless its view set its own (the widget's iframe page lets
    the widget's allowed origins frame it)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if CSP not in response:
            response[CSP] = site_policy(request)
        return response


class StaticFilesHandler(ASGIStaticFilesHandler):
    """Django's /static/ handler for Daphne, with nosniff: a file is only ever what its type says."""

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response = await super().get_response_async(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
