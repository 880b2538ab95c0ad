"""Pages of tuned models: the card and evaluation, download, merge-and-export, publish, delete."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from store.artifacts import ArtifactMissing, merged_name, tuned_name
from store.downloads import stream_zip
from store.merging import merge_is_stalled, request_merge
from store.models import Method, TunedModel
from store.tuned import TunedModelInUse, delete_tuned_model

logger = logging.getLogger(__name__)

MERGEABLE = (Method.LORA, Method.ADALORA)


def tuned_detail(request: HttpRequest, short_id: str) -> HttpResponseBase:
    """Public when published; otherwise only for members of the organization that owns it."""
    organization = getattr(request, "organization", None)
    visible = Q(published=True)
    if organization is not None:
        visible |= Q(organization=organization)
    tuned = get_object_or_404(TunedModel.objects.filter(visible).select_related("base", "organization"),
                              short_id=short_id)
    is_owner = organization is not None and tuned.organization_id == organization.pk
    can_manage = is_owner and request.membership.is_admin  # type: ignore[attr-defined]
    return render(request, "store/tuned_detail.html", {
        "tuned": tuned, "can_manage": can_manage,
        "mergeable": tuned.method in MERGEABLE, "merge_stalled": merge_is_stalled(tuned),
        "job": getattr(tuned, "job", None) if is_owner else None,
    })


def _own(request: HttpRequest, short_id: str) -> TunedModel:
    return get_for_organization(TunedModel.objects.select_related("base"), request.organization,  # type: ignore[attr-defined]
                                short_id=short_id)


def _missing(request: HttpRequest, tuned: TunedModel, error: ArtifactMissing, message: str) -> HttpResponseBase:
    """The row says there are weights, the storage has none: say so on the model's page (the operator's log
    names the storage), rather than a broken or empty zip."""
    logger.error("download of %s: %s", tuned.short_id, error)
    messages.error(request, f"{message} Ask your administrator to check the artifact storage.")
    return redirect("store:tuned_detail", tuned.short_id)


@organization_admin_required
def tuned_download(request: HttpRequest, short_id: str) -> HttpResponseBase:
    tuned = _own(request, short_id)
    name = f"{tuned.slug}-{tuned.short_id}"
    try:
        chunks = stream_zip(tuned_name(tuned), name)
    except ArtifactMissing as error:
        return _missing(request, tuned, error, "The weights of this model are missing from the artifact storage.")
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@organization_admin_required
def tuned_merged_download(request: HttpRequest, short_id: str) -> HttpResponseBase:
    tuned = _own(request, short_id)
    if tuned.merged_status != "ready":
        raise Http404("No merged export yet.")
    name = f"{tuned.slug}-{tuned.short_id}-merged"
    try:
        chunks = stream_zip(merged_name(tuned), name)
    except ArtifactMissing as error:
        return _missing(request, tuned, error, "The merged export is missing from the artifact storage; merge again.")
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@require_POST
@organization_admin_required
def tuned_merge(request: HttpRequest, short_id: str) -> HttpResponseBase:
    tuned = _own(request, short_id)
    if tuned.method not in MERGEABLE:
        messages.error(request, "Only LoRA-family models can be merged into their base.")
    elif request_merge(tuned.pk):  # also takes over a merge whose worker is gone (store/merging.py)
        messages.info(request, "Merging on a worker; the download appears here when it is ready.")
    else:
        messages.info(request, "A merge of this model is already queued or running.")
    return redirect("store:tuned_detail", short_id)


@require_POST
@organization_admin_required
def tuned_publish(request: HttpRequest, short_id: str) -> HttpResponseBase:
    tuned = _own(request, short_id)
    tuned.published = request.POST.get("published") == "1"
    tuned.save(update_fields=["published"])
    messages.success(request, "Listed on the storefront." if tuned.published else "Removed from the storefront.")
    return redirect("store:tuned_detail", short_id)


@require_POST
@organization_admin_required
def tuned_delete(request: HttpRequest, short_id: str) -> HttpResponseBase:
    tuned = _own(request, short_id)
    try:
        delete_tuned_model(tuned)
    except TunedModelInUse as error:
        messages.error(request, str(error))
        return redirect("store:tuned_detail", short_id)
    messages.success(request, f"Deleted {tuned.slug} and its weights.")
    return redirect("finetune:index")
