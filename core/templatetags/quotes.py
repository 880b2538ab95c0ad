"""For core/quotes.js: the sources of a server-rendered reply, so its quoted entries' headings are bold."""

import json

from django import template

register = template.Library()


@register.filter
def titles_json(passages) -> str:
    """The titles of a reply's passages (dicts or objects with .title) as JSON, for data-quote-sources."""
    return json.dumps([p["title"] if isinstance(p, dict) else p.title for p in passages or []], ensure_ascii=False)
