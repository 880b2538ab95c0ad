"""The site's policy is `script-src 'self'`: nothing inline runs. These tests keep the templates (and the
pages they render) free of what the policy would silently block — inline <script>, on*= handlers, htmx's
hx-on (compiled with Function()) and javascript: URLs — so a regression fails here, not in a browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "templates").rglob("*.html"))
SCRIPTS = sorted((REPO / "static").rglob("*.js"))

# Script elements the browser never executes: data islands such as json_script's output.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster"}
# htmx evaluates a value with a js:/javascript: prefix in these attributes.
HTMX_VALUE_ATTRIBUTES = {"hx-vals", "hx-vars", "hx-headers", "data-hx-vals", "data-hx-vars", "data-hx-headers"}


class InlineCodeFinder(HTMLParser):
    """Collects every place in an HTML document (or a template: its tags are left as text) where code
    would run inline."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._inline_script_at: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"line {line}: inline handler {name}= on <{tag}>")
            elif re.match(r"(data-)?hx-on", name):
                self.problems.append(f"line {line}: {name} (htmx compiles it with Function())")
            elif name in URL_ATTRIBUTES and re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith("javascript:"):
                self.problems.append(f"line {line}: javascript: URL in {name}= on <{tag}>")
            elif name in HTMX_VALUE_ATTRIBUTES and re.match(r"\s*(js|javascript):", value, re.I):
                self.problems.append(f"line {line}: {name} evaluated as script")
        if tag == "script" and "src" not in values and values.get("type", "").strip().lower() not in DATA_SCRIPT_TYPES:
            self._inline_script_at = self.getpos()

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._inline_script_at:
            self.problems.append(f"line {self._inline_script_at[0]}: inline <script> without src")
            self._inline_script_at = None


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


@pytest.mark.parametrize("html", [
    '<form onsubmit="return confirm(\'Delete?\')"></form>',
    "<select ONCHANGE='this.form.submit()'></select>",
    '<form hx-post="/x" hx-on::after-request="this.reset()"></form>',
    '<div data-hx-on-click="alert(1)"></div>',
    "<script>document.title = 'x'</script>",
    '<script type="text/javascript">1</script>',
    '<a href=" JavaScript:alert(1)">x</a>',
    '<button hx-post="/x" hx-vals="js:{a: secret()}">x</button>',
])
def test_the_check_finds_inline_code(html):
    assert inline_code(html)


@pytest.mark.parametrize("html", [
    '<script src="/static/core/behaviours.js" defer></script>',
    '<script id="data" type="application/json">{"a": 1}</script>',
    '<form data-confirm="Delete this? It cannot be undone."></form>',
    '<a href="/javascript-guide/">guide</a>',
    '<button hx-post="/x" hx-vals=\'{"a": 1}\'>x</button>',
])
def test_the_check_allows_what_the_policy_allows(html):
    assert inline_code(html) == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(REPO / "templates")))
def test_no_template_has_inline_code(template):
    assert inline_code(template.read_text()) == [], template


def test_every_template_was_checked():
    assert len(TEMPLATES) > 30 and any(path.name == "base.html" for path in TEMPLATES)


def test_htmx_is_configured_never_to_eval(client, db):
    page = client.get(reverse("accounts:login")).content.decode()
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert config and '"allowEval": false' in config.group(1)
    assert page.index('name="htmx-config"') < page.index("htmx-2")  # read before htmx starts


def test_rendered_pages_have_no_inline_code(alice, client):
    """Includes, packages' tags (django-htmx) and the admin count too: the rendered page is what runs."""
    for page_client, url in [(alice.client, reverse("store:home")), (alice.client, reverse("store:api_keys")),
                             (alice.client, reverse("accounts:members")), (alice.client, reverse("admin:index")),
                             (client, reverse("accounts:login"))]:
        response = page_client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(REPO / "static")))
def test_no_static_script_evaluates_strings(script):
    source = script.read_text()
    for pattern in (r"\beval\(", r"\bnew Function\(", r"\bset(Timeout|Interval)\(\s*['\"`]",
                    r"setAttribute\(\s*['\"]on", r"\.innerHTML\s*=\s*['\"`][^'\"`]*\son[a-z]+="):
        assert not re.search(pattern, source), (script, pattern)
