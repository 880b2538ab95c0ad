"""Markdown rendered safely: raw HTML in the source is shown as text, never injected."""

from functools import lru_cache

from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    # html=False escapes raw HTML; markdown-it's validateLink drops javascript:/vbscript:/data: URLs.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render_markdown(text: str) -> str:
    return _renderer().render(text or "")


def strip_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split a model card's YAML front matter (simple `key: value` lines only) from its body."""
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end == -1:
        return {}, text
    meta: dict[str, str] = {}
    for line in text[3:end].splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith((" ", "-")) and value.strip():
            meta[key.strip()] = value.strip()
    return meta, text[end + 4:].lstrip("\n")
