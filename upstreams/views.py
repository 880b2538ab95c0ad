"""The org admin's hosted models: register an OpenAI-compatible upstream, replace its key, remove it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from upstreams import registry
from upstreams.forms import ReplaceKeyForm, UpstreamForm
from upstreams.models import UpstreamModel


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


@organization_admin_required
def upstream_list(request: HttpRequest) -> HttpResponseBase:
    organization = _org(request)
    form = UpstreamForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upstream = registry.register(organization, data["name"], data["base_url"], data["model_name"],
                                     data["api_key"], request.user)
        messages.success(request, f"{upstream.name} is in your catalog: deploy it like any dialogue model.")
        return redirect("upstreams:list")
    upstreams = UpstreamModel.objects.filter(organization=organization).prefetch_related("deployments")
    return render(request, "upstreams/list.html", {"form": form, "upstreams": upstreams,
                                                   "key_form": ReplaceKeyForm()},
                  status=400 if form.errors else 200)


@organization_admin_required
@require_POST
def replace_key(request: HttpRequest, upstream_id: int) -> HttpResponseBase:
    upstream = get_for_organization(UpstreamModel, _org(request), pk=upstream_id)
    form = ReplaceKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors.get("api_key", ["Invalid key."])))
        return redirect("upstreams:list")
    registry.replace_key(upstream, form.cleaned_data["api_key"])
    messages.success(request, f"The key of {upstream.name} was replaced.")
    return redirect("upstreams:list")


@organization_admin_required
@require_POST
def delete(request: HttpRequest, upstream_id: int) -> HttpResponseBase:
    upstream = get_for_organization(UpstreamModel, _org(request), pk=upstream_id)
    try:
        registry.delete(upstream)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("upstreams:list")
    messages.success(request, f"{upstream.name} was removed.")
    return redirect("upstreams:list")
