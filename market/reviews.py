"""Reviews: one rating (1–5) and text per installing organization per listing, editable, only after use."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Avg, Count

from accounts.models import Organization
from core.text import text_problem
from market.installs import has_used
from market.models import Installation, Listing, Review

REVIEW_TEXT_CHARS = 4000


def _refresh_rating(listing: Listing) -> None:
    totals = Review.objects.filter(listing=listing).aggregate(average=Avg("rating"), count=Count("pk"))
    Listing.objects.filter(pk=listing.pk).update(rating_average=round(totals["average"] or 0, 2),
                                                 rating_count=totals["count"])


def may_review(organization: Organization, listing: Listing) -> str | None:
    """None when the organization may review the listing; otherwise why not (shown as is)."""
    if listing.organization_id == organization.pk:
        return "Publishers cannot review their own listing."
    if not Installation.objects.filter(organization=organization, listing=listing).exists():
        return "Install this model before reviewing it."
    if not has_used(organization, listing):
        return "Use this model (a request through a deployment of it) before reviewing it."
    return None


@transaction.atomic
def save_review(organization: Organization, listing: Listing, rating: int, text: str, user=None) -> Review:
    """Create or edit the organization's one review; the listing's average and count follow."""
    refusal = may_review(organization, listing)
    if refusal is not None:
        raise ValidationError(refusal)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValidationError({"rating": "rating must be a whole number from 1 to 5."})
    text = text.strip()
    if len(text) > REVIEW_TEXT_CHARS:
        raise ValidationError({"text": f"A review is at most {REVIEW_TEXT_CHARS} characters."})
    problem = text_problem(text)
    if problem:
        raise ValidationError({"text": problem})
    review, _ = Review.objects.update_or_create(listing=listing, organization=organization,
                                                defaults={"rating": rating, "text": text, "author": user})
    _refresh_rating(listing)
    return review
