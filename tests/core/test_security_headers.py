"""Security headers: the site's Content-Security-Policy, nosniff on /static/, and a production setup
that `manage.py check --deploy` accepts (HTTPS redirect and HSTS)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from asgiref.testing import ApplicationCommunicator
from django.urls import reverse

REPO = Path(__file__).resolve().parents[2]


def directives(policy: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def test_site_pages_carry_a_content_security_policy(alice, client):
    pages = [(alice.client, reverse(name)) for name in ("store:home", "finetune:index", "admin:index")]
    for page_client, url in [*pages, (client, reverse("accounts:login"))]:
        response = page_client.get(url)
        assert response.status_code == 200, url
        policy = directives(response["Content-Security-Policy"])
        assert policy["default-src"] == "default-src 'self'"
        assert "https:" not in policy["script-src"] and "*" not in policy["script-src"]
        assert policy["object-src"] == "object-src 'none'"
        assert policy["base-uri"] == "base-uri 'none'"
        assert policy["frame-ancestors"] == "frame-ancestors 'none'"
        assert policy["form-action"] == "form-action 'self'"
        assert policy["connect-src"] == "connect-src 'self' ws://testserver wss://testserver"


def test_the_policy_allows_only_script_files_from_this_site(alice):
    page = alice.client.get(reverse("store:home"))
    policy = directives(page["Content-Security-Policy"])
    # No inline script, inline handler or eval (htmx's hx-on included) may run: an injected attribute is inert.
    assert policy["script-src"] == "script-src 'self'"
    assert "'unsafe-inline'" in policy["style-src"]  # style="…" attributes, styles only
    sources = re.findall(r'<script[^>]+src="([^"]+)"', page.content.decode())
    assert sources and all(src.startswith("/") and not src.startswith("//") for src in sources)


async def test_static_files_are_served_with_nosniff():
    from config.asgi import application

    communicator = ApplicationCommunicator(application, {
        "type": "http", "http_version": "1.1", "method": "GET", "path": "/static/chat/widget.js",
        "raw_path": b"/static/chat/widget.js", "query_string": b"", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "scheme": "http"})
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    headers = {name.lower(): value for name, value in start["headers"]}
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b"javascript" in headers[b"content-type"]


def documented_production_environment() -> dict[str, str]:
    """The variables the README's production (scaling-out) setup exports, secrets left out."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Scaling out"):]
    values = {}
    for line in section.splitlines():
        if line.startswith("export "):
            for name, value in re.findall(r"([A-Z_]+)=(\S+)", line.split("#")[0]):
                if "…" not in value:
                    values[name] = value
    return values


def test_check_deploy_passes_ssl_redirect_and_hsts_with_the_documented_production_settings(tmp_path):
    documented = documented_production_environment()
    assert documented["DEBUG"] == "0"
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE",
                                "DJANGO_ALLOW_ASYNC_UNSAFE"}}  # the browser tests' conftest sets it in this process
    environment.update(documented, GPT_STORE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings",
                       SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="store.example")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "security.W004" not in output and "security.W008" not in output, output
