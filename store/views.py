from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from store.catalog import is_available
from store.models import FoundationModel, Task, TunedModel


def _search_catalog(query: str, task: str):
    models = FoundationModel.objects.all()
    if query:
        models = models.filter(
            Q(display_name__icontains=query) | Q(slug__icontains=query) | Q(family__icontains=query)
            | Q(summary__icontains=query) | Q(architecture__icontains=query)
        )
    if task == Task.DIALOGUE:
        models = models.filter(supports_dialogue=True)
    elif task == Task.SENTIMENT:
        models = models.filter(supports_sentiment=True)
    return models


def _search_published(query: str, task: str):
    tuned = TunedModel.objects.filter(published=True).select_related("base", "organization")
    if query:
        tuned = tuned.filter(Q(name__icontains=query) | Q(slug__icontains=query)
                             | Q(base__display_name__icontains=query) | Q(organization__name__icontains=query))
    if task in Task.values:
        tuned = tuned.filter(task=task)
    return tuned[:24]


def _search_hosted(request: HttpRequest, query: str, task: str):
    """The signed-in organization's hosted models (its OpenAI-compatible upstreams): dialogue models of its
    own catalog, never shown to anyone else."""
    from upstreams.models import UpstreamModel

    organization = getattr(request, "organization", None)
    if organization is None or task not in ("", Task.DIALOGUE):
        return UpstreamModel.objects.none()
    hosted = UpstreamModel.objects.filter(organization=organization)
    if query:
        hosted = hosted.filter(Q(name__icontains=query) | Q(model_name__icontains=query))
    return hosted


def home(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    task = request.GET.get("task", "")
    context = {
        "models": _search_catalog(query, task),
        "published": _search_published(query, task),
        "hosted": _search_hosted(request, query, task),
        "query": query,
        "task": task,
        "task_choices": Task.choices,
    }
    template = "store/partials/model_list.html" if request.htmx else "store/home.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def model_detail(request: HttpRequest, slug: str) -> HttpResponse:
    model = get_object_or_404(FoundationModel, slug=slug)
    organization = getattr(request, "organization", None)
    visible = Q(published=True) | (Q(organization=organization) if organization is not None else Q(pk__in=[]))
    tuned = model.tuned_models.filter(visible).select_related("organization")[:30]
    return render(request, "store/model_detail.html", {"model": model, "available": is_available(model),
                                                       "tuned_versions": tuned})
