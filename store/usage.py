"""Usage metering: requests and tokens per source (key, playground, widget), model and day."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from store.models import ApiKey, UsageDaily


def source_of(api_key: ApiKey | None, fallback: str) -> str:
    return f"key:{api_key.pk}" if api_key is not None else fallback


def record_usage(organization_id: int, model: str, prompt_tokens: int, completion_tokens: int,
                 api_key: ApiKey | None = None, source: str = "playground", requests: int = 1) -> None:
    """Add to today's counters (`requests` > 1: a batch, e.g. widget messages scored together)."""
    source = source_of(api_key, source)
    day = timezone.localdate()
    counters = {"requests": F("requests") + requests, "prompt_tokens": F("prompt_tokens") + prompt_tokens,
                "completion_tokens": F("completion_tokens") + completion_tokens}
    rows = UsageDaily.objects.filter(organization_id=organization_id, source=source, day=day, model=model)
    if rows.update(**counters):
        return
    try:
        with transaction.atomic():
            UsageDaily.objects.create(organization_id=organization_id, api_key=api_key, source=source, day=day,
                                      model=model, requests=requests, prompt_tokens=prompt_tokens,
                                      completion_tokens=completion_tokens)
    except IntegrityError:
        rows.update(**counters)  # another process created today's row first
