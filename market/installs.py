"""Installing a listing into another organization, deploying it, upgrading or staying pinned.

An installer's deployment serves the publisher's TunedModel row itself (store.deploy's grant hook lets
it): one artifact and one engine key (`tuned:<id>`) for every organization, read-only to all but the
publisher. Version switches go through store.deploy, so each is a deployment revision and rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum

from accounts.models import Organization
from market.models import Installation, Listing, ListingVersion
from store import deploy
from store.models import Deployment, UsageDaily


def granted_tuned_ids(organization: Organization) -> list[int]:
    """Every version of every listing the organization installed, published or not (pinned installs keep
    working when the publisher unpublishes or an operator hides the listing)."""
    return list(ListingVersion.objects.filter(listing__installations__organization=organization)
                .values_list("tuned_model_id", flat=True))


def _refresh_install_count(listing: Listing) -> None:
    Listing.objects.filter(pk=listing.pk).update(install_count=Installation.objects.filter(listing=listing).count())


def install(organization: Organization, listing: Listing, user=None) -> Installation:
    """Install the latest version of a public listing (idempotent: an existing install is returned)."""
    existing = Installation.objects.filter(organization=organization, listing=listing).first()
    if existing is not None:
        return existing
    if listing.organization_id == organization.pk:
        raise ValidationError("This is your own model: deploy it from its page, no install needed.")
    if not listing.is_public:
        raise ValidationError(f"{listing.title} is not available for new installs.")
    latest = listing.latest_version()
    if latest is None:
        raise ValidationError(f"{listing.title} has no version to install.")
    try:
        with transaction.atomic():
            installation = Installation.objects.create(organization=organization, listing=listing, version=latest,
                                                       installed_by=user)
    except IntegrityError:  # a second click at the same time: the first one installed it
        return Installation.objects.get(organization=organization, listing=listing)
    _refresh_install_count(listing)
    return installation


def deployments_of(installation: Installation):
    """The installing organization's deployments that serve some version of the listing now."""
    return Deployment.objects.filter(organization_id=installation.organization_id,
                                     tuned_model__listing_versions__listing_id=installation.listing_id).distinct()


def version_of(deployment: Deployment, listing: Listing) -> ListingVersion | None:
    return ListingVersion.objects.filter(listing=listing, tuned_model_id=deployment.tuned_model_id).first()


def deploy_installed(installation: Installation, slug: str, user=None, name: str = "",
                     version: ListingVersion | None = None) -> Deployment:
    """A deployment of the installed version (or another version of the same listing) in the installer's
    organization: from here on it is served, keyed, metered and rolled back like any of its own."""
    version = version or installation.version
    if version.listing_id != installation.listing_id:
        raise ValidationError({"version": "That version belongs to another listing."})
    if Deployment.objects.filter(organization_id=installation.organization_id, slug=slug).exists():
        raise ValidationError({"slug": f"You already have a deployment called {slug!r}."})
    return deploy.create_or_update(installation.organization, slug, deploy.ModelChoice(tuned=version.tuned_model),
                                   user, name=name or installation.listing.title)


@transaction.atomic
def upgrade(installation: Installation, version: ListingVersion, user=None,
            deployments: list[Deployment] | None = None) -> list[Deployment]:
    """Move the install (and the given deployments of it, default: all) to `version`; each deployment
    switch is a new revision, so store.deploy.rollback returns to the pinned version."""
    if version.listing_id != installation.listing_id:
        raise ValidationError({"version": "That version belongs to another listing."})
    mine = list(deployments_of(installation))
    chosen = mine if deployments is None else [d for d in mine if d.pk in {x.pk for x in deployments}]
    if deployments is not None and len(chosen) != len(deployments):
        raise ValidationError({"deployment": "That deployment does not serve this listing."})
    Installation.objects.filter(pk=installation.pk).update(version=version)
    installation.version = version
    return [deploy.create_or_update(installation.organization, d.slug, deploy.ModelChoice(tuned=version.tuned_model),
                                    user) for d in chosen]


def uninstall(installation: Installation) -> None:
    """Refused while a deployment serves it (or could roll back to it is fine: rollback re-checks)."""
    in_use = list(deployments_of(installation).values_list("slug", flat=True)[:5])
    if in_use:
        raise ValidationError(f"Deployments still serve {installation.listing.title} ({', '.join(in_use)}); "
                              "point them at another model or delete them first.")
    listing = installation.listing
    installation.delete()
    _refresh_install_count(listing)


@dataclass
class InstalledDeployment:
    deployment: Deployment
    version: ListingVersion | None
    newer: ListingVersion | None  # "new version available" when set


def installed_deployments(installation: Installation) -> list[InstalledDeployment]:
    latest = installation.listing.latest_version()
    rows = []
    for deployment in deployments_of(installation).select_related("tuned_model"):
        version = version_of(deployment, installation.listing)
        newer = latest if latest and version and latest.number > version.number else None
        rows.append(InstalledDeployment(deployment, version, newer))
    return rows


def _usage_filter(listing: Listing, organization: Organization | None = None) -> Q | None:
    """UsageDaily rows of installers' deployments that served the listing (a revision of the deployment
    pointed at one of its versions), excluding the publisher's own use."""
    served = Deployment.objects.filter(revisions__tuned_model__listing_versions__listing=listing).exclude(
        organization_id=listing.organization_id)
    if organization is not None:
        served = served.filter(organization=organization)
    pairs = set(served.values_list("organization_id", "slug"))
    if not pairs:
        return None
    condition = Q()
    for organization_id, slug in pairs:
        condition |= Q(organization_id=organization_id, model=slug)
    return condition


def has_used(organization: Organization, listing: Listing) -> bool:
    condition = _usage_filter(listing, organization)
    return condition is not None and UsageDaily.objects.filter(condition, requests__gt=0).exists()


@dataclass
class ListingStats:
    """What the publisher sees of its installers: counts, never who, what they asked or their data."""

    installs: int
    requests: int
    tokens: int


def listing_stats(listing: Listing) -> ListingStats:
    installs = Installation.objects.filter(listing=listing).count()
    condition = _usage_filter(listing)
    if condition is None:
        return ListingStats(installs, 0, 0)
    totals = UsageDaily.objects.filter(condition).aggregate(
        requests=Sum("requests"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    return ListingStats(installs, totals["requests"] or 0, (totals["prompt"] or 0) + (totals["completion"] or 0))
