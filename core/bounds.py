"""Every numeric bound the product enforces, decided here and nowhere else.

Forms, the /v1 API, the admin, model fields and the WebSocket consumers all ask this module, so a
seed, an epoch count, a rate or a date range is refused the same way wherever it arrives. Each
bound names itself in its error ("seed must be between 0 and 4294967295") so the client can fix the
request without reading our code.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator


class OutOfBounds(ValueError):
    """A number outside its bound; the message is safe to show to the client."""

    def __init__(self, bound: Bound, value: Any):
        self.bound, self.value = bound, value
        super().__init__(bound.message())


@dataclass(frozen=True)
class Bound:
    name: str
    low: int | float
    high: int | float

    def message(self) -> str:
        return f"{self.name} must be between {self.low} and {self.high}."

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return self.low <= value <= self.high

    def check(self, value: Any) -> Any:
        """The value itself when it lies inside the bound; OutOfBounds otherwise (also for non-numbers)."""
        if not self.contains(value):
            raise OutOfBounds(self, value)
        return value

    def clamp(self, value: int | float) -> int | float:
        return min(max(value, self.low), self.high)

    # Adapters, so each layer states the bound by name instead of repeating its numbers.
    def pydantic(self) -> dict[str, int | float]:
        """Keyword arguments for pydantic's Field: Field(None, **SEED.pydantic())."""
        return {"ge": self.low, "le": self.high}

    def form(self) -> dict[str, Any]:
        """Keyword arguments for a Django form field: forms.IntegerField(**SEED.form())."""
        return {"min_value": self.low, "max_value": self.high}

    def validators(self) -> list:
        """Validators for a Django model field (the admin and model forms enforce them)."""
        return [MinValueValidator(self.low), MaxValueValidator(self.high)]

    def validate(self, value: Any) -> None:
        """Django-style validator: raises ValidationError instead of OutOfBounds."""
        if not self.contains(value):
            raise ValidationError(self.message())


# Random seeds reach numpy (which takes < 2**32) and torch; one range for all of them.
SEED = Bound("seed", 0, 2**32 - 1)

# Fine-tuning: an epoch count or batch size outside these plans no job we would ever finish.
EPOCHS = Bound("n_epochs", 1, 100)
BATCH_SIZE = Bound("batch_size", 1, 512)
LEARNING_RATE_MULTIPLIER = Bound("learning_rate_multiplier", 1e-4, 100)
# Jobs an organization may have waiting or running at once; more are refused, not queued forever.
ACTIVE_JOBS_PER_ORGANIZATION = 10

# Fine-tuning checkpoints: a step interval beyond any job we would plan is a typo.
CHECKPOINT_EVERY_STEPS = Bound("checkpoint_every_steps", 1, 1_000_000)

# Generation.
MAX_TOKENS = Bound("max_tokens", 1, 2048)

# API keys' rate limits (0 would refuse every request, and a refill rate of 0 divides by zero).
REQUESTS_PER_MINUTE = Bound("requests_per_minute", 1, 100_000)
TOKENS_PER_MINUTE = Bound("tokens_per_minute", 1, 100_000_000)

# Lists and exports.
PAGE_SIZE = Bound("limit", 1, 100)

# Sequence numbers a client sends back (widget/console replay); JSON numbers beyond this are not ours.
SEQUENCE = Bound("last_seq", 0, 2**53)

# The usage page's chart, in days back from today.
USAGE_DAYS = Bound("days", 1, 90)

# Date ranges a page or export may cover: two years of days, and no dates outside this window.
DAYS_IN_RANGE = Bound("date range (days)", 1, 731)
EARLIEST_DATE = datetime.date(2000, 1, 1)
LATEST_DATE = datetime.date(2100, 12, 31)


def date_range(start: datetime.date, end: datetime.date) -> tuple[datetime.date, datetime.date]:
    """A (start, end) pair inside the product's window and at most DAYS_IN_RANGE long; OutOfBounds otherwise.

    Callers that would rather clamp than refuse use clamp_date_range.
    """
    span = Bound("date", EARLIEST_DATE.toordinal(), LATEST_DATE.toordinal())
    span.check(start.toordinal())
    span.check(end.toordinal())
    if end < start:
        raise OutOfBounds(DAYS_IN_RANGE, 0)
    DAYS_IN_RANGE.check((end - start).days + 1)
    return start, end


def clamp_date_range(start: datetime.date, end: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The nearest allowed range: dates pulled into the window, order fixed, length cut to DAYS_IN_RANGE from end."""
    start = min(max(start, EARLIEST_DATE), LATEST_DATE)
    end = min(max(end, EARLIEST_DATE), LATEST_DATE)
    if end < start:
        start, end = end, start
    longest = datetime.timedelta(days=int(DAYS_IN_RANGE.high) - 1)
    if end - start > longest:
        start = end - longest
    return start, end


# The marketplace's public try-it (market/tryit.py): billed to nobody, so small. Replies are cut at
# TRY_IT_MAX_TOKENS; each signed-in user and each listing has its own per-minute bucket.
TRY_IT_MAX_TOKENS = 64
TRY_IT_PER_USER_PER_MINUTE = 6
TRY_IT_PER_LISTING_PER_MINUTE = 60
TRY_IT_MESSAGE_CHARS = Bound("message length", 1, 1000)

# Hosted models (upstreams/client.py): every call to an OpenAI-compatible upstream is bounded, so a slow or
# silent server becomes a clear error, never a hang. Connect, the wait for each piece of the reply, and the
# whole reply. A reply line longer than UPSTREAM_LINE_BYTES is refused as malformed.
UPSTREAM_CONNECT_SECONDS = 5.0
UPSTREAM_READ_SECONDS = 60.0
UPSTREAM_REPLY_SECONDS = 300.0
UPSTREAM_LINE_BYTES = 1024 * 1024
