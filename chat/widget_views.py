"""Public endpoints of the embeddable widget: its iframe page, its config, a visitor session."""

from __future__ import annotations

import json
import logging

from asgiref.sync import async_to_sync
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from chat.identity import IdentityRefused, open_visitor, sign_socket_token
from chat.models import Widget
from chat.widgets import frame_ancestors, normalize_origin
from core import client_address, ratelimit

logger = logging.getLogger(__name__)
SESSIONS_PER_IP_PER_MINUTE = 30


def _widget(key: str) -> Widget:
    widget = Widget.objects.select_related("organization", "deployment").filter(public_key=key).first()
    if widget is None:
        raise Http404("Unknown widget")
    return widget


def _origin_allowed(widget: Widget, origin: str) -> bool:
    try:
        return normalize_origin(origin) in widget.allowed_origins
    except Exception:
        return False


@require_GET
def widget_config(request: HttpRequest, key: str) -> JsonResponse:
    """Read by widget.js on the business's site (CORS) to draw the launcher before the iframe loads."""
    widget = _widget(key)
    origin = request.headers.get("Origin", "")
    if not _origin_allowed(widget, origin):
        response = JsonResponse({"error": f"This widget may not be embedded on {origin or 'this site'}: add it to "
                                          "the widget's allowed origins."}, status=403)
    else:
        response = JsonResponse({
            "title": widget.title, "color": widget.color, "position": widget.position,
            "frame": request.build_absolute_uri(reverse("chat:widget_frame", args=[widget.public_key])),
        })
    if origin:
        # Echoed on the 403 too, so the embed script can read why and say it in the console.
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


@xframe_options_exempt  # embedding is governed by the CSP below, per widget
@require_GET
def widget_frame(request: HttpRequest, key: str) -> HttpResponse:
    widget = _widget(key)
    response = render(request, "chat/widget_frame.html", {"widget": widget})
    host = request.get_host()
    # ws: and wss: of this host are listed explicitly: older browsers do not count them as 'self'.
    response["Content-Security-Policy"] = (
        f"{frame_ancestors(widget)}; default-src 'self'; connect-src 'self' ws://{host} wss://{host}; "
        "img-src 'self' data:; style-src 'self' 'unsafe-inline'")
    return response


@csrf_exempt  # called by our own iframe without cookies (third-party context); the visitor token is the credential
@require_POST
def widget_session(request: HttpRequest, key: str) -> JsonResponse:
    widget = _widget(key)
    ip = client_address.for_request(request)
    decision = async_to_sync(ratelimit.take)(f"chat:session:{ip}", SESSIONS_PER_IP_PER_MINUTE)
    if not decision.allowed:
        response = JsonResponse({"error": "Too many chat sessions from this address; try again soon."}, status=429)
        response["Retry-After"] = str(decision.retry_after)
        return response
    try:
        payload = json.loads(request.body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        return JsonResponse({"error": "Malformed request."}, status=400)
    identity = payload.get("identity") if isinstance(payload.get("identity"), dict) else None
    try:
        visitor = open_visitor(widget, str(payload.get("visitor_token") or "")[:64], identity)
    except IdentityRefused as error:
        return JsonResponse({"error": str(error), "code": "identity_refused"}, status=403)
    return JsonResponse({"token": sign_socket_token(widget, visitor), "visitor_token": visitor.token,
                         "name": visitor.name, "socket": "/ws/chat/widget/"})
