from django import template

from store.api.protocol import OUTCOME_LABELS

register = template.Library()


@register.filter
def confusion_rows(metrics: dict) -> list[dict]:
    """[{label, counts}] rows of the tuned model's confusion matrix (true label per row)."""
    tuned = (metrics or {}).get("tuned") or {}
    labels, matrix = tuned.get("labels") or [], tuned.get("confusion_matrix") or []
    return [{"label": label, "counts": counts} for label, counts in zip(labels, matrix, strict=False)]


@register.filter
def last_user_message(conversation) -> str:
    """The customer's last words in a held-out conversation (a list of messages, or already text)."""
    if isinstance(conversation, str):
        return conversation
    users = [m.get("content", "") for m in conversation or [] if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else ""


@register.filter
def outcome_label(outcome: str) -> str:
    """A reply's grounding outcome (`quoted`, `did_not_know`...) in words."""
    return OUTCOME_LABELS.get(outcome or "", outcome or "")
