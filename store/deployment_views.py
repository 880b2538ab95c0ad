"""Deployments, their playground and code snippets; API keys; usage."""

from __future__ import annotations

import json
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError, Sum
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from core.bounds import USAGE_DAYS
from core.charts import bar_chart
from core.forms import add_validation_errors
from store import deploy
from store.api.completions import inference_error
from store.api.errors import ApiError
from store.api.protocol import OUTCOME_LABELS
from store.api_keys import create_api_key, revoke
from store.forms import ApiKeyForm, DeploymentForm
from store.inference.client import InferenceError, InferenceUnavailable, classify, new_request_id
from store.inference.protocol import ClassificationRequest
from store.models import ApiKey, Deployment, DeploymentStatus, UsageDaily
from store.usage import record_usage


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


def _deployment(request: HttpRequest, slug: str) -> Deployment:
    queryset = Deployment.objects.select_related("tuned_model__base", "tuned_model__organization", "base_model",
                                                 "organization")
    return get_for_organization(queryset, _org(request), slug=slug)


@organization_admin_required
def deployment_list(request: HttpRequest) -> HttpResponseBase:
    deployments = Deployment.objects.filter(organization=_org(request)).select_related("tuned_model", "base_model")
    return render(request, "store/deployments.html", {"deployments": deployments})


def _model_reference(deployment: Deployment) -> str:
    """The form's value for the served model: an installed (foreign) tuned model by its unique short id."""
    tuned = deployment.tuned_model
    if deployment.upstream_model is not None:
        return deployment.upstream_model.reference
    if tuned is None:
        return deployment.base.slug  # type: ignore[union-attr]
    return tuned.slug if tuned.organization_id == deployment.organization_id else tuned.short_id


def _suggested_name(organization, reference: str) -> str:
    """A new deployment's name for the model it was opened with (?model=): a hosted model's own name, else
    the reference read as words."""
    ident = reference.removeprefix("upstream:")
    if ident != reference:
        from upstreams.models import UpstreamModel

        hosted = UpstreamModel.objects.filter(organization=organization,
                                              pk=int(ident) if ident.isdigit() else -1).first()
        if hosted is not None:
            return hosted.name
    return reference.replace("-", " ").replace(":", " ").title()[:80]


@organization_admin_required
def deployment_edit(request: HttpRequest, slug: str | None = None) -> HttpResponseBase:
    organization = _org(request)
    deployment = _deployment(request, slug) if slug else None
    initial = {}
    if deployment is not None:
        initial = {"name": deployment.name, "slug": deployment.slug, "system_prompt": deployment.system_prompt,
                   "temperature": deployment.temperature, "top_p": deployment.top_p,
                   "max_tokens": deployment.max_tokens,
                   "model": _model_reference(deployment)}
    elif request.GET.get("model"):
        name = _suggested_name(organization, request.GET["model"])
        initial = {"model": request.GET["model"], "name": name, "slug": slugify(name)}
    form = DeploymentForm(request.POST or None, organization=organization, editing=deployment, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            choice = deploy.find_model(organization, data["model"])
            # A new deployment never takes over an existing one's model id (create_or_update would make it
            # that deployment's next revision).
            slug = deployment.slug if deployment else deploy.check_slug(organization, data["slug"] or data["name"])
            saved = deploy.create_or_update(
                organization, slug, choice, request.user,
                name=data["name"], system_prompt=data["system_prompt"], temperature=data["temperature"],
                top_p=data["top_p"], max_tokens=data["max_tokens"])
        except ValidationError as error:
            add_validation_errors(form, error)
        else:
            messages.success(request, f"{saved.name} is deployed (revision {saved.revision}).")
            return redirect("store:deployment_detail", saved.slug)
    return render(request, "store/deployment_edit.html", {"form": form, "deployment": deployment})


@organization_admin_required
def deployment_detail(request: HttpRequest, slug: str) -> HttpResponseBase:
    deployment = _deployment(request, slug)
    return render(request, "store/deployment_detail.html", {
        "deployment": deployment, "revisions": deployment.revisions.select_related("tuned_model", "base_model")[:20],
        "base_url": request.build_absolute_uri("/v1"), "outcome_labels": OUTCOME_LABELS,
    })


@require_POST
@organization_admin_required
def deployment_rollback(request: HttpRequest, slug: str) -> HttpResponseBase:
    deployment = _deployment(request, slug)
    try:
        deployment = deploy.rollback(deployment, int(request.POST.get("revision", 0)), request.user)
        messages.success(request, f"Rolled back: now serving {deployment.served_model_label} "
                                  f"(revision {deployment.revision}).")
    except (ValidationError, ValueError) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    return redirect("store:deployment_detail", slug)


@require_POST
@organization_admin_required
def deployment_status(request: HttpRequest, slug: str) -> HttpResponseBase:
    deployment = _deployment(request, slug)
    status = DeploymentStatus.PAUSED if request.POST.get("status") == "paused" else DeploymentStatus.ACTIVE
    deploy.set_status(deployment, status, request.user)
    messages.info(request, f"{deployment.name} is {status}.")
    return redirect("store:deployment_detail", slug)


@require_POST
@organization_admin_required
def deployment_delete(request: HttpRequest, slug: str) -> HttpResponseBase:
    deployment = _deployment(request, slug)
    try:
        deploy.delete_deployment(deployment)
    except ProtectedError as error:
        # A chat widget answers with it (Widget.deployment is PROTECT): say which, instead of a server error.
        widgets = ", ".join(sorted(str(getattr(obj, "title", obj)) for obj in error.protected_objects))
        messages.error(request, f"{deployment.name} is used by the chat widget {widgets}: point the widget at "
                                "another deployment first.")
        return redirect("store:deployment_detail", slug)
    messages.success(request, f"Undeployed {deployment.name}.")
    return redirect("store:deployment_list")


# --- playground (session-authenticated, same serving path as /v1; the chat one is knowledge's) -----


def _playground_target(request: HttpRequest, slug: str) -> Deployment:
    deployment = _deployment(request, slug)
    if deployment.status != DeploymentStatus.ACTIVE:
        raise ApiError(409, "This deployment is paused.", code="deployment_paused")
    return deployment


@organization_admin_required
async def playground_sentiment(request: HttpRequest, slug: str) -> HttpResponseBase:
    if request.method != "POST":
        return ApiError(405, "POST a JSON body {text: ...}.").response()
    try:
        deployment = await sync_to_async(_playground_target)(request, slug)
        text = str(json.loads(request.body or b"{}").get("text", "")).strip()[:10_000]
        if not text:
            raise ApiError(400, "Type a message to score.", param="text")
        result = await classify(ClassificationRequest(request_id=new_request_id(), model_key=deployment.model_key,
                                                      texts=[text]))
    except (InferenceError, InferenceUnavailable) as error:
        return inference_error(error).response()
    except ApiError as error:
        return error.response()
    except ValueError:
        return ApiError(400, "Malformed request body.").response()
    await sync_to_async(record_usage)(deployment.organization_id, deployment.slug, result.get("prompt_tokens", 0), 0,
                                      source="playground")
    return JsonResponse(result["results"][0])


# --- API keys and usage -------------------------------------------------------------------------


@organization_admin_required
def api_keys(request: HttpRequest) -> HttpResponseBase:
    organization = _org(request)
    form = ApiKeyForm(request.POST or None, organization=organization)
    new_key = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        key, new_key = create_api_key(organization, data["name"], list(data["deployments"]), request.user,
                                      data["requests_per_minute"], data["tokens_per_minute"])
        form = ApiKeyForm(organization=organization)
    keys = ApiKey.objects.filter(organization=organization).prefetch_related("deployments")
    return render(request, "store/api_keys.html", {"form": form, "keys": keys, "new_key": new_key,
                                                   "base_url": request.build_absolute_uri("/v1")})


@require_POST
@organization_admin_required
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponseBase:
    key = get_for_organization(ApiKey, _org(request), pk=key_id)
    revoke(key)
    messages.success(request, f"Revoked {key.name} ({key.prefix}…). Calls with it now get 401.")
    return redirect("store:api_keys")


@organization_admin_required
def usage(request: HttpRequest) -> HttpResponseBase:
    organization = _org(request)
    asked = request.GET.get("days", "30")
    days = int(USAGE_DAYS.clamp(int(asked))) if asked.isascii() and asked.isdigit() and len(asked) < 6 else 30
    since = timezone.localdate() - timedelta(days=days - 1)
    rows = UsageDaily.objects.filter(organization=organization, day__gte=since).select_related("api_key")
    per_day = {since + timedelta(days=i): 0 for i in range(days)}
    for day, total in rows.values_list("day").annotate(total=Sum("prompt_tokens") + Sum("completion_tokens")):
        per_day[day] = total
    per_source = rows.values("source", "api_key__name", "api_key__prefix", "model").annotate(
        requests=Sum("requests"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")).order_by(
        "-prompt")
    chart = bar_chart([(day.strftime("%m-%d"), total) for day, total in per_day.items()], title="Tokens per day")
    return render(request, "store/usage.html", {"chart": chart, "per_source": per_source, "days": days,
                                                "daily": rows.order_by("-day", "source")[:200]})
