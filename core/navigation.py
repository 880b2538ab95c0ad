"""Which top-bar section a page belongs to: the one place the nav's "current page" is decided.

URLs do not follow apps one to one: a deployment's knowledge settings and its chat playground are
served by the knowledge app, API keys and usage by the store, the marketplace belongs to the
storefront. Each page marks exactly one section current (or none: account pages).
"""

from __future__ import annotations

from django.http import HttpRequest

# url names that belong to another section than their app's
_BY_URL_NAME = {
    "deployment_knowledge": "deployments",
    "playground_chat": "deployments",
    "playground_sentiment": "deployments",
    "api_keys": "api_keys",
    "api_key_revoke": "api_keys",
    "usage": "usage",
}
_BY_APP = {"store": "models", "market": "models", "chat": "console", "finetune": "finetune",
           "knowledge": "knowledge", "upstreams": "upstreams"}


def section(app_name: str, url_name: str) -> str | None:
    if url_name in _BY_URL_NAME:
        return _BY_URL_NAME[url_name]
    if app_name == "store" and url_name.startswith("deployment_"):
        return "deployments"
    return _BY_APP.get(app_name)


def nav_section(request: HttpRequest) -> dict:
    """Context processor: `nav_section`, the top bar's current section for this page."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {"nav_section": None}
    return {"nav_section": section(match.app_name or "", match.url_name or "")}
