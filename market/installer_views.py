"""The installer's pages: install a listing, deploy it, upgrade or stay pinned, download weights, review."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from market import installs, reviews
from market.forms import DeployForm, ReviewForm
from market.listings import visible_listing
from market.models import Installation, ListingVersion
from store.artifacts import ArtifactMissing, tuned_name
from store.downloads import stream_zip


def _installation(request: HttpRequest, slug: str) -> Installation:
    return get_for_organization(Installation.objects.select_related("listing__base", "listing__organization",
                                                                    "version__tuned_model"),
                                request.organization, listing__slug=slug)  # type: ignore[attr-defined]


def _version(installation: Installation, number: int | None) -> ListingVersion | None:
    if number is None:
        return None
    version = installation.listing.versions.filter(number=number).first()
    if version is None:
        raise ValidationError({"version": f"{installation.listing.title} has no version {number}."})
    return version


@require_POST
@organization_admin_required
def install(request: HttpRequest, slug: str) -> HttpResponseBase:
    listing = visible_listing(slug, request.organization)  # type: ignore[attr-defined]
    if listing is None:
        raise Http404("No such listing.")
    try:
        installs.install(request.organization, listing, request.user)  # type: ignore[attr-defined]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("market:listing", slug)
    messages.success(request, f"Installed {listing.title}: deploy it below.")
    return redirect("market:installation", slug)


@organization_admin_required
def installed(request: HttpRequest) -> HttpResponseBase:
    rows = [(installation, installs.installed_deployments(installation))
            for installation in Installation.objects.filter(organization=request.organization)  # type: ignore[attr-defined]
            .select_related("listing", "version")]
    return render(request, "market/installed.html", {"rows": rows})


@organization_admin_required
def installation_detail(request: HttpRequest, slug: str) -> HttpResponseBase:
    installation = _installation(request, slug)
    listing = installation.listing
    latest = listing.latest_version()
    return render(request, "market/installation.html", {
        "installation": installation, "listing": listing, "latest": latest,
        "versions": listing.versions.all(), "deployments": installs.installed_deployments(installation),
        "deploy_form": DeployForm(listing=listing, initial={"slug": listing.slug[:60]}),
        "newer": latest if latest and latest.number > installation.version.number else None,
    })


@require_POST
@organization_admin_required
def deploy_installed(request: HttpRequest, slug: str) -> HttpResponseBase:
    installation = _installation(request, slug)
    form = DeployForm(request.POST, listing=installation.listing)
    if not form.is_valid():
        messages.error(request, "Give the deployment a slug of letters, digits and dashes.")
        return redirect("market:installation", slug)
    try:
        deployment = installs.deploy_installed(installation, form.cleaned_data["slug"], request.user,
                                               form.cleaned_data["name"],
                                               _version(installation, form.cleaned_data["version"]))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("market:installation", slug)
    messages.success(request, f"{deployment.name} is deployed: call it as {deployment.slug!r} in /v1, or put it in "
                              "a chat widget.")
    return redirect("store:deployment_detail", deployment.slug)


@require_POST
@organization_admin_required
def upgrade(request: HttpRequest, slug: str) -> HttpResponseBase:
    """Explicit: the install (and one deployment, or all of them) moves to the chosen version; each
    deployment gets a new revision, so its page rolls it back."""
    installation = _installation(request, slug)
    try:
        number = int(request.POST.get("version", ""))
        version = _version(installation, number)
        assert version is not None
        chosen = request.POST.get("deployment", "")
        targets = None
        if chosen:
            targets = [d for d in installs.deployments_of(installation) if d.slug == chosen]
            if not targets:
                raise ValidationError(f"{chosen!r} does not serve {installation.listing.title}.")
        switched = installs.upgrade(installation, version, request.user, targets)
    except ValueError:
        messages.error(request, "Pick a version.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        names = ", ".join(d.slug for d in switched) or "no deployment"
        messages.success(request, f"Now on version {version.number} ({names}); roll back from a deployment's page.")
    return redirect("market:installation", slug)


@require_POST
@organization_admin_required
def uninstall(request: HttpRequest, slug: str) -> HttpResponseBase:
    installation = _installation(request, slug)
    try:
        installs.uninstall(installation)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("market:installation", slug)
    messages.success(request, f"Uninstalled {installation.listing.title}.")
    return redirect("market:installed")


@organization_admin_required
def download(request: HttpRequest, slug: str) -> HttpResponseBase:
    """The installed version's weights, when the publisher allows it (the publisher's datasets never)."""
    installation = _installation(request, slug)
    if not installation.listing.allow_weights_download:
        raise Http404("The publisher does not offer the weights of this model.")
    tuned = installation.version.tuned_model
    name = f"{installation.listing.slug}-v{installation.version.number}"
    try:
        chunks = stream_zip(tuned_name(tuned), name)
    except ArtifactMissing:
        messages.error(request, "The weights of this version are missing on this server.")
        return redirect("market:installation", slug)
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@require_POST
@organization_admin_required
def review(request: HttpRequest, slug: str) -> HttpResponseBase:
    listing = visible_listing(slug, None) or get_for_organization(
        Installation.objects.select_related("listing"), request.organization,  # type: ignore[attr-defined]
        listing__slug=slug).listing
    form = ReviewForm(request.POST)
    back = redirect("market:listing" if listing.is_public else "market:installation", slug)
    if not form.is_valid():
        messages.error(request, "A review needs a rating from 1 to 5 (and at most 4000 characters of text).")
        return back
    try:
        reviews.save_review(request.organization, listing, form.cleaned_data["rating"],  # type: ignore[attr-defined]
                            form.cleaned_data["text"], request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Thanks: your review is on the listing.")
    return back
