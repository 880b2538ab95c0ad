from django import template

register = template.Library()

LABEL_CLASSES = {"negative": "badge-bad", "positive": "badge-ok", "neutral": "badge-muted"}
STATUS_CLASSES = {"needs_human": "badge-bad", "assigned": "badge", "bot": "badge-muted", "resolved": "badge-ok"}


@register.filter
def sentiment_class(label: str) -> str:
    return LABEL_CLASSES.get(label or "", "badge-muted")


@register.filter
def score_class(score: float | None) -> str:
    if score is None:
        return "badge-muted"
    return "badge-bad" if score < -0.3 else "badge-ok" if score > 0.3 else "badge-warn"


@register.filter
def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, "badge-muted")
