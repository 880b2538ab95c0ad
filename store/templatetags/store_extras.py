from django import template

register = template.Library()


@register.filter
def confusion_rows(metrics: dict) -> list[dict]:
    """[{label, counts}] rows of the tuned model's confusion matrix (true label per row)."""
    tuned = (metrics or {}).get("tuned") or {}
    labels, matrix = tuned.get("labels") or [], tuned.get("confusion_matrix") or []
    return [{"label": label, "counts": counts} for label, counts in zip(labels, matrix, strict=False)]
