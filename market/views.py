"""The marketplace's public pages: the storefront, a listing, and its try-it playground."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_POST

from market import installs, reviews, storefront, tryit
from market.forms import ReviewForm, TryItForm
from market.listings import visible_listing
from market.models import Installation, Listing
from store.inference.client import InferenceError, InferenceUnavailable
from store.models import Task


def _organization(request: HttpRequest):
    return getattr(request, "organization", None)


def _listing(request: HttpRequest, slug: str) -> Listing:
    listing = visible_listing(slug, _organization(request))
    if listing is None:
        raise Http404("No such listing.")
    return listing


def storefront_page(request: HttpRequest) -> HttpResponse:
    query, task, sort = request.GET.get("q", ""), request.GET.get("task", ""), request.GET.get("sort", "newest")
    sort = sort if sort in storefront.SORTS else "newest"
    context = {"listings": storefront.search(query, task, sort)[:48], "query": query[:storefront.QUERY_CHARS],
               "task": task, "sort": sort, "task_choices": Task.choices, "sorts": list(storefront.SORTS)}
    template = "market/partials/listing_grid.html" if request.htmx else "market/storefront.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def listing_context(request: HttpRequest, listing: Listing) -> dict:
    organization = _organization(request)
    membership = getattr(request, "membership", None)
    is_admin = bool(membership is not None and membership.is_admin)
    is_publisher = organization is not None and listing.organization_id == organization.pk
    installation = None if organization is None or is_publisher else Installation.objects.filter(
        organization=organization, listing=listing).select_related("version").first()
    review_refusal = reviews.may_review(organization, listing) if organization is not None and is_admin else None
    own_review = listing.reviews.filter(organization=organization).first() if organization is not None else None
    return {
        "listing": listing, "versions": listing.versions.all(), "latest": listing.latest_version(),
        "reviews": listing.reviews.all()[:50],
        "is_publisher": is_publisher, "can_manage": is_publisher and is_admin,
        # What the publisher sees of its installers: counts only.
        "stats": installs.listing_stats(listing) if is_publisher else None,
        "installation": installation,
        "can_install": is_admin and not is_publisher and installation is None and listing.is_public,
        "can_review": is_admin and installation is not None and review_refusal is None,
        "review_refusal": review_refusal if installation is not None else None,
        "review_form": ReviewForm(initial={"rating": own_review.rating, "text": own_review.text}
                                  if own_review else None),
        "own_review": own_review,
        "can_try": request.user.is_authenticated and listing.is_public and listing.task != Task.EMBEDDING,
        "try_form": TryItForm(),
    }


def listing_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "market/listing_detail.html", listing_context(request, _listing(request, slug)))


def _public_listing(request: HttpRequest, slug: str):
    listing = visible_listing(slug, None)  # try-it is for public listings only, the publisher's included
    if listing is None:
        raise Http404("No such listing.")
    # The version's tuned model is read in the async view: fetched here, not lazily there.
    return listing, listing.versions.select_related("tuned_model").order_by("-number").first()


def _try_answer(request: HttpRequest, context: dict, status: int = 200, retry_after: int = 0) -> HttpResponse:
    response = render(request, "market/partials/try_it_answer.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


answer_page = sync_to_async(_try_answer)  # context processors read the database


@require_POST
@login_required
async def try_it(request: HttpRequest, slug: str) -> HttpResponseBase:
    """One message to the listing's latest version (htmx swaps the answer in). Billed to nobody."""
    listing, version = await sync_to_async(_public_listing)(request, slug)
    user = await request.auser()
    assert user.pk is not None  # login_required
    message = request.POST.get("message", "")
    try:
        message = tryit.check_message(message)
        if version is None:
            raise tryit.TryItRefused(409, "This listing has no version to try yet.")
        await tryit.take_turn(user.pk, listing.pk)
        reply = await tryit.answer(listing, version, message)
    except tryit.TryItRefused as refused:
        return await answer_page(request, {"error": refused.message, "message": message}, refused.status,
                                 refused.retry_after)
    except (InferenceError, InferenceUnavailable) as error:
        return await answer_page(request, {"error": f"The model could not answer right now ({error}).",
                                           "message": message}, 503)
    return await answer_page(request, {"reply": reply, "message": message, "version": version})
