"""`manage.py serve_demo_shop`: the fictional Acme Shoes website, on another origin, with the widget.

A customer's site is never GPT Store's own origin; serving the demo page from another port (and
host name: localhost vs 127.0.0.1) makes the widget run exactly as it does on a real shop.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.template.loader import render_to_string

from chat.identity import identity_hash
from chat.models import Widget
from stack.demo import DEMO_CUSTOMER_ID, DEMO_ORG_SLUG, DEMO_WIDGET_TITLE


def demo_page(site_url: str) -> str:
    close_old_connections()
    widget = Widget.objects.filter(organization__slug=DEMO_ORG_SLUG, title=DEMO_WIDGET_TITLE).first()
    if widget is None:
        raise CommandError("The demo widget does not exist yet (manage.py runstack creates it).")
    identity = {"id": DEMO_CUSTOMER_ID, "name": "Jordan (demo customer)", "email": "jordan@example.com",
                "hash": identity_hash(widget, DEMO_CUSTOMER_ID)}
    return render_to_string("chat/demo_shop.html", {"site_url": site_url.rstrip("/"), "widget_key": widget.public_key,
                                                    "identity_json": json.dumps(identity)})


class Command(BaseCommand):
    help = "Serve the Acme Shoes demo shop page (another origin) with the chat widget embedded."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--site-url", default="http://127.0.0.1:8000", help="where GPT Store runs")

    def handle(self, *args, port: int, bind: str, site_url: str, **options) -> None:
        demo_page(site_url)  # fail now, loudly, if the widget is missing

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/", "/index.html"):
                    self.send_error(404)
                    return
                body = demo_page(site_url).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        server = ThreadingHTTPServer((bind, port), Handler)
        self.stdout.write(f"Acme Shoes demo shop on http://localhost:{port}/ (widget from {site_url})")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
