"""The publisher's pages: publish a tuned model, manage a listing and its versions; operators hide listings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from core.forms import add_validation_errors
from market import installs, listings
from market.forms import ListingForm, PublishForm, VersionForm
from market.models import Listing
from store.models import TunedModel


def _own_listing(request: HttpRequest, slug: str) -> Listing:
    return get_for_organization(Listing.objects.select_related("base", "organization"),
                                request.organization, slug=slug)  # type: ignore[attr-defined]


def _own_tuned(request: HttpRequest, short_id: str) -> TunedModel:
    tuned = TunedModel.objects.filter(organization=request.organization, short_id=short_id).first()  # type: ignore[attr-defined]
    if tuned is None:
        raise ValidationError({"tuned_model": "That tuned model does not exist."})
    return tuned


@organization_admin_required
def publish(request: HttpRequest) -> HttpResponseBase:
    organization = request.organization  # type: ignore[attr-defined]
    form = PublishForm(request.POST or None, organization=organization,
                       initial={"tuned_model": request.GET.get("tuned", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            listing = listings.publish(
                organization, _own_tuned(request, data["tuned_model"]), request.user, title=data["title"],
                summary=data["summary"], license=data["license"], languages=data["languages"],
                description=data["description"], allow_weights_download=data["allow_weights_download"],
                changelog=data["changelog"] or "First version.")
        except ValidationError as error:
            add_validation_errors(form, error)
        else:
            messages.success(request, f"{listing.title} is in the marketplace.")
            return redirect("market:listing", listing.slug)
    return render(request, "market/publish.html", {"form": form})


@organization_admin_required
def manage(request: HttpRequest, slug: str) -> HttpResponseBase:
    listing = _own_listing(request, slug)
    form = ListingForm(request.POST or None, initial={field: getattr(listing, field)
                                                      for field in listings.LISTING_FIELDS})
    if request.method == "POST" and form.is_valid():
        try:
            listings.update_listing(listing, **{field: form.cleaned_data[field] for field in listings.LISTING_FIELDS})
        except ValidationError as error:
            add_validation_errors(form, error)
        else:
            messages.success(request, "Listing saved.")
            return redirect("market:manage", listing.slug)
    return render(request, "market/manage.html", {
        "listing": listing, "form": form, "version_form": VersionForm(listing=listing),
        "versions": listing.versions.select_related("tuned_model"), "stats": installs.listing_stats(listing)})


@require_POST
@organization_admin_required
def add_version(request: HttpRequest, slug: str) -> HttpResponseBase:
    listing = _own_listing(request, slug)
    form = VersionForm(request.POST, listing=listing)
    if form.is_valid():
        try:
            version = listings.add_version(listing, _own_tuned(request, form.cleaned_data["tuned_model"]),
                                           form.cleaned_data["changelog"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Version {version.number} published; installers see it as an upgrade.")
    else:
        messages.error(request, "Pick a tuned model of this listing's task and base, and write a changelog.")
    return redirect("market:manage", listing.slug)


@require_POST
@organization_admin_required
def set_published(request: HttpRequest, slug: str) -> HttpResponseBase:
    listing = listings.set_published(_own_listing(request, slug), request.POST.get("published") == "1")
    messages.success(request, "Listed in the marketplace." if listing.published else
                     "Unpublished: no new installs; organizations that installed it keep their version.")
    return redirect("market:manage", listing.slug)


@require_POST
@login_required
def hide(request: HttpRequest, slug: str) -> HttpResponseBase:
    """Moderation: operators (superusers) only."""
    if not request.user.is_superuser:
        raise PermissionDenied("Only operators can hide a listing.")
    listing = get_object_or_404(Listing, slug=slug)
    listings.set_hidden(listing, request.POST.get("hidden", "1") == "1", request.POST.get("reason", ""))
    messages.info(request, f"{listing.title} is {'hidden' if listing.hidden else 'visible again'}.")
    return redirect("market:storefront")
