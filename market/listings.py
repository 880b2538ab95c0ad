"""Publishing: a listing of a tuned model, its versions, unpublishing and moderation.

Every function here is what the pages, the admin and tests call; none checks who the caller is beyond
the organization passed in (views check the role).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.text import slugify

from accounts.models import Organization
from market.models import Listing, ListingVersion
from store.models import TunedModel

# Listing slugs share /market/<slug>/ with these pages.
RESERVED_SLUGS = frozenset({"publish", "installed"})
LISTING_FIELDS = ("title", "summary", "description", "languages", "license", "allow_weights_download")


def _check_publishable(organization: Organization, tuned: TunedModel) -> None:
    if tuned.organization_id != organization.pk:
        raise ValidationError({"tuned_model": "That tuned model does not exist."})
    if not tuned.artifact_path:
        raise ValidationError({"tuned_model": f"{tuned} has no weights on this server; it cannot be published."})


def evaluation_report(tuned: TunedModel) -> dict:
    """What a version shows of its job: the evaluation metrics (with their examples), never the datasets."""
    return dict(tuned.metrics or {})


@transaction.atomic
def publish(organization: Organization, tuned: TunedModel, user=None, *, title: str, summary: str, license: str,
            languages: str = "", description: str = "", allow_weights_download: bool = False,
            changelog: str = "First version.") -> Listing:
    """A new public listing whose version 1 is `tuned` (a model of the publishing organization)."""
    _check_publishable(organization, tuned)
    slug = slugify(title)[:80]
    if not slug:
        raise ValidationError({"title": "Give the listing a title with letters or digits."})
    if slug in RESERVED_SLUGS or Listing.objects.filter(slug=slug).exists():
        raise ValidationError({"title": f"A listing called {slug!r} already exists; pick another title."})
    listing = Listing.objects.create(
        organization=organization, slug=slug, title=title.strip(), summary=summary.strip(), license=license.strip(),
        languages=languages.strip(), description=description, allow_weights_download=allow_weights_download,
        task=tuned.task, base=tuned.base, created_by=user)
    ListingVersion.objects.create(listing=listing, number=1, tuned_model=tuned, changelog=changelog,
                                  metrics=evaluation_report(tuned))
    return listing


def add_version(listing: Listing, tuned: TunedModel, changelog: str) -> ListingVersion:
    """The next version of `listing`: a model of the publisher with the listing's task and base."""
    _check_publishable(listing.organization, tuned)
    if (tuned.task, tuned.base_id) != (listing.task, listing.base_id):
        raise ValidationError({"tuned_model": f"{listing.title} is a {listing.task} model of {listing.base}; "
                                              f"{tuned} is a {tuned.task} model of {tuned.base}."})
    if listing.versions.filter(tuned_model=tuned).exists():
        raise ValidationError({"tuned_model": f"{tuned} is already a version of {listing.title}."})
    for _ in range(3):  # two publishers' clicks at once: the unique number decides, the loser takes the next
        number = (listing.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        try:
            with transaction.atomic():
                return ListingVersion.objects.create(listing=listing, number=number, tuned_model=tuned,
                                                     changelog=changelog, metrics=evaluation_report(tuned))
        except IntegrityError:
            continue
    raise ValidationError("Could not number the new version; try again.")


def update_listing(listing: Listing, **values) -> Listing:
    for field, value in values.items():
        if field not in LISTING_FIELDS:
            raise ValueError(f"{field} is not an editable listing field")
        setattr(listing, field, value.strip() if isinstance(value, str) and field != "description" else value)
    listing.full_clean()
    listing.save()
    return listing


def set_published(listing: Listing, published: bool) -> Listing:
    """Unpublishing stops new installs and hides the listing; installed organizations keep serving it."""
    listing.published = published
    listing.save(update_fields=["published", "updated_at"])
    return listing


def set_hidden(listing: Listing, hidden: bool, reason: str = "") -> Listing:
    """An operator's moderation (superusers only: the caller checks): like unpublishing, and the publisher
    cannot undo it."""
    listing.hidden, listing.hidden_reason = hidden, reason[:200] if hidden else ""
    listing.save(update_fields=["hidden", "hidden_reason", "updated_at"])
    return listing


def public_listings():
    return Listing.objects.filter(published=True, hidden=False)


def visible_listing(slug: str, organization: Organization | None) -> Listing | None:
    """A public listing, or any listing of the publisher's own organization; None otherwise."""
    listing = Listing.objects.select_related("organization", "base").filter(slug=slug).first()
    if listing is None:
        return None
    if listing.is_public or (organization is not None and listing.organization_id == organization.pk):
        return listing
    return None
