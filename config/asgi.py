"""ASGI entry point for Daphne: HTTP (pages, /v1 with SSE) and WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from core.client_address import ProxyHeadersMiddleware  # noqa: E402

http_app = django_asgi_app
if settings.SERVE_STATIC:
    from core.security_headers import StaticFilesHandler

    http_app = StaticFilesHandler(django_asgi_app)

# Client address and scheme from X-Forwarded-* only when a trusted proxy sent them (core/client_address.py).
application = ProxyHeadersMiddleware(ProtocolTypeRouter(
    {
        "http": http_app,
        # Every socket must come from a page of this site (its Origin in ALLOWED_HOSTS). The routes of signed-in
        # pages resolve the session's user themselves (AuthMiddlewareStack in each app's routing.py).
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
))
