"""The top bar marks exactly the section a page belongs to as the current page (core/navigation.py)."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core import navigation

CURRENT = re.compile(r'<a href="[^"]*" aria-current="page">([^<]+)</a>')


def current_links(html: str) -> list[str]:
    return CURRENT.findall(html)


@pytest.mark.parametrize("url_name, expected", [
    ("store:home", ["Models"]),
    ("market:storefront", ["Models"]),
    ("chat:console", ["Console"]),
    ("finetune:index", ["Fine-tune"]),
    ("knowledge:index", ["Knowledge"]),
    ("upstreams:list", ["Hosted models"]),
    ("store:deployment_list", ["Deployments"]),
    ("store:deployment_new", ["Deployments"]),
    ("store:api_keys", ["API keys"]),
    ("store:usage", ["Usage"]),
    ("accounts:members", []),
])
def test_each_page_marks_only_its_own_section(alice, url_name, expected):
    response = alice.client.get(reverse(url_name))
    assert response.status_code == 200
    assert current_links(response.content.decode()) == expected


def test_pages_of_a_deployment_served_by_other_apps_belong_to_deployments():
    assert navigation.section("knowledge", "deployment_knowledge") == "deployments"
    assert navigation.section("knowledge", "playground_chat") == "deployments"
    assert navigation.section("store", "deployment_detail") == "deployments"
    assert navigation.section("store", "tuned_detail") == "models"
    assert navigation.section("knowledge", "source_detail") == "knowledge"
    assert navigation.section("accounts", "login") is None


def _url_names(resolver: URLResolver, app_name: str = "") -> set[str]:
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            names |= _url_names(pattern, pattern.app_name or app_name)
        elif isinstance(pattern, URLPattern) and pattern.name:
            names.add(pattern.name)
    return names


def test_every_url_name_the_navigation_names_exists():
    """A renamed view would silently drop out of its section."""
    assert set(navigation._BY_URL_NAME) <= _url_names(get_resolver())
