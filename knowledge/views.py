"""Knowledge pages: knowledge bases, their sources (live status), passages, and "ask the knowledge base"."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from core.forms import add_validation_errors
from knowledge import sources
from knowledge.documents import DocumentRejected, check_size
from knowledge.forms import (
    AskForm,
    EditTextForm,
    EmbeddingModelForm,
    KnowledgeBaseForm,
    PasteForm,
    QuestionListForm,
    SourceUploadForm,
)
from knowledge.models import KnowledgeBase, KnowledgeSource


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


def _knowledge_base(request: HttpRequest, slug: str) -> KnowledgeBase:
    return get_for_organization(KnowledgeBase.objects.select_related("embedding_base", "embedding_tuned",
                                                                     "pending_base", "pending_tuned"),
                                _org(request), slug=slug)


def _source(request: HttpRequest, slug: str, source_id: int) -> KnowledgeSource:
    knowledge_base = _knowledge_base(request, slug)
    return get_for_organization(KnowledgeSource.objects.select_related("knowledge_base", "live_version"),
                                _org(request), pk=source_id, knowledge_base=knowledge_base)


def _form_problems(form) -> list[str]:
    return [f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()]


@organization_admin_required
def index(request: HttpRequest) -> HttpResponse:
    organization = _org(request)
    models = sources.embedding_models(organization)
    form = KnowledgeBaseForm(request.POST or None, models=models,
                             initial={"embedding_model": sources.DEFAULT_EMBEDDING_MODEL})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            knowledge_base = sources.create_knowledge_base(
                organization, data["name"], data["description"],
                sources.find_embedding_model(organization, data["embedding_model"]))
        except ValidationError as error:
            add_validation_errors(form, error)
        else:
            messages.success(request, f"{knowledge_base.name} created: add your help centre, FAQ or policies.")
            return redirect("knowledge:detail", knowledge_base.slug)
    knowledge_bases = KnowledgeBase.objects.filter(organization=organization).annotate(
        source_count=Count("sources", distinct=True),
        live_count=Count("sources", filter=Q(sources__live_version__isnull=False), distinct=True),
        deployment_count=Count("deployments", distinct=True)).select_related("embedding_base", "embedding_tuned")
    return render(request, "knowledge/index.html", {"form": form, "knowledge_bases": knowledge_bases})


def _detail_context(request: HttpRequest, knowledge_base: KnowledgeBase) -> dict:
    source_list = knowledge_base.sources.select_related("live_version").prefetch_related("versions")
    return {
        "knowledge_base": knowledge_base, "sources": source_list,
        "passage_count": sources.live_passages(knowledge_base).count(),
        "pending": sources.pending_versions(knowledge_base).exists() or knowledge_base.pending_key is not None,
        "deployments": [attached.deployment for attached in knowledge_base.deployments.select_related("deployment")],
    }


@organization_admin_required
def detail(request: HttpRequest, slug: str) -> HttpResponse:
    knowledge_base = _knowledge_base(request, slug)
    organization = _org(request)
    context = _detail_context(request, knowledge_base)
    # "Write its answer" from the question list: the paste form opens with the question as its heading.
    unanswered = sources.answer_title(request.GET.get("answer", ""))
    context.update({
        "upload_form": SourceUploadForm(),
        "paste_form": PasteForm(initial={"title": unanswered, "text": f"### {unanswered}\n\n"} if unanswered else None),
        "ask_form": AskForm(deployments=context["deployments"]), "check_form": QuestionListForm(),
        "model_form": EmbeddingModelForm(models=sources.embedding_models(organization), initial={
            "embedding_model": getattr(knowledge_base.embedding_tuned or knowledge_base.embedding_base, "slug", "")}),
        "max_mb": settings.KNOWLEDGE_MAX_BYTES / 1e6,
    })
    return render(request, "knowledge/detail.html", context)


@organization_admin_required
def sources_partial(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "knowledge/partials/sources.html", _detail_context(request, _knowledge_base(request, slug)))


@csrf_exempt  # the size check runs before Django reads (and buffers) the body; CSRF is checked right after
def upload(request: HttpRequest, slug: str) -> HttpResponseBase:
    if request.method == "POST":
        try:
            check_size(int(request.META.get("CONTENT_LENGTH") or 0), settings.KNOWLEDGE_MAX_BYTES + 64 * 1024)
        except DocumentRejected as error:
            return _refused(request, slug, [str(p) for p in error.problems], status=413)
    return csrf_protect(_upload)(request, slug)


def _refused(request: HttpRequest, slug: str, problems: list[str], status: int, more: int = 0) -> HttpResponse:
    return render(request, "knowledge/refused.html", {"slug": slug, "problems": problems, "more": more},
                  status=status)


@require_POST
@organization_admin_required
def _upload(request: HttpRequest, slug: str) -> HttpResponseBase:
    knowledge_base = _knowledge_base(request, slug)
    form = SourceUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _refused(request, slug, _form_problems(form), 400)
    upload_ = form.cleaned_data["file"]
    try:
        source = sources.add_file(knowledge_base, upload_.read(), upload_.name, title=form.cleaned_data["title"],
                                  url=form.cleaned_data["url"], user=request.user)
    except DocumentRejected as error:
        status = 413 if any("limit is" in p.message for p in error.problems) else 400
        return _refused(request, slug, [str(p) for p in error.problems], status, error.truncated)
    except ValidationError as error:
        return _refused(request, slug, error.messages, 400)
    messages.success(request, f"{source.title}: {source.versions.get().passage_count} passages, embedding now.")
    return redirect("knowledge:detail", slug)


@require_POST
@organization_admin_required
def paste(request: HttpRequest, slug: str) -> HttpResponseBase:
    knowledge_base = _knowledge_base(request, slug)
    form = PasteForm(request.POST)
    if not form.is_valid():
        return _refused(request, slug, _form_problems(form), 400)
    data = form.cleaned_data
    try:
        source = sources.add_text(knowledge_base, data["title"], data["text"], url=data["url"], user=request.user)
    except DocumentRejected as error:
        return _refused(request, slug, [str(p) for p in error.problems], 400)
    except ValidationError as error:
        return _refused(request, slug, error.messages, 400)
    messages.success(request, f"{source.title}: {source.versions.get().passage_count} passages, embedding now.")
    return redirect("knowledge:detail", slug)


@organization_admin_required
def source_detail(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    source = _source(request, slug, source_id)
    versions = list(source.versions.all())
    shown = source.live_version or (versions[0] if versions else None)
    form = EditTextForm(request.POST or None, initial={"text": versions[0].text if versions else ""})
    if request.method == "POST" and form.is_valid():
        try:
            version = sources.revise_text(source, form.cleaned_data["text"], request.user)
        except DocumentRejected as error:
            return _refused(request, slug, [str(p) for p in error.problems], 400)
        except ValidationError as error:
            add_validation_errors(form, error)
        else:
            live = source.live_version.number if source.live_version else "—"
            messages.success(request, f"Version {version.number} saved: it goes live once embedded; version {live} "
                                      "answers until then.")
            return redirect("knowledge:source_detail", slug, source.pk)
    return render(request, "knowledge/source_detail.html", {
        "knowledge_base": source.knowledge_base, "source": source, "versions": versions, "shown": shown,
        "passages": shown.passages.all() if shown else [], "form": form, "upload_form": SourceUploadForm()})


@csrf_exempt
def source_upload(request: HttpRequest, slug: str, source_id: int) -> HttpResponseBase:
    if request.method == "POST":
        try:
            check_size(int(request.META.get("CONTENT_LENGTH") or 0), settings.KNOWLEDGE_MAX_BYTES + 64 * 1024)
        except DocumentRejected as error:
            return _refused(request, slug, [str(p) for p in error.problems], status=413)
    return csrf_protect(_source_upload)(request, slug, source_id)


@require_POST
@organization_admin_required
def _source_upload(request: HttpRequest, slug: str, source_id: int) -> HttpResponseBase:
    source = _source(request, slug, source_id)
    upload_ = request.FILES.get("file")
    if upload_ is None:
        return _refused(request, slug, ["Choose a file to upload."], 400)
    try:
        version = sources.revise_file(source, upload_.read(), upload_.name or "upload", request.user)
    except DocumentRejected as error:
        status = 413 if any("limit is" in p.message for p in error.problems) else 400
        return _refused(request, slug, [str(p) for p in error.problems], status, error.truncated)
    except ValidationError as error:
        return _refused(request, slug, error.messages, 400)
    messages.success(request, f"Version {version.number} uploaded: it goes live once embedded.")
    return redirect("knowledge:source_detail", slug, source.pk)


@require_POST
@organization_admin_required
def source_delete(request: HttpRequest, slug: str, source_id: int) -> HttpResponseBase:
    source = _source(request, slug, source_id)
    sources.delete_source(source)
    messages.success(request, f"Removed {source.title}: the bot no longer answers from it.")
    return redirect("knowledge:detail", slug)


@require_POST
@organization_admin_required
def version_retry(request: HttpRequest, slug: str, source_id: int, number: int) -> HttpResponseBase:
    source = _source(request, slug, source_id)
    version = get_for_organization(source.versions.all(), _org(request), number=number)
    try:
        sources.retry_version(version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("knowledge:source_detail", slug, source.pk)


@require_POST
@organization_admin_required
def switch_model(request: HttpRequest, slug: str) -> HttpResponseBase:
    knowledge_base = _knowledge_base(request, slug)
    form = EmbeddingModelForm(request.POST, models=sources.embedding_models(_org(request)))
    if form.is_valid():
        try:
            model = sources.find_embedding_model(_org(request), form.cleaned_data["embedding_model"])
            sources.switch_embedding_model(knowledge_base, model)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Embedding every passage with {model}: the knowledge base switches to it "
                                      "once all are done.")
    else:
        messages.error(request, "Pick an embedding model.")
    return redirect("knowledge:detail", slug)


@require_POST
@organization_admin_required
def delete(request: HttpRequest, slug: str) -> HttpResponseBase:
    knowledge_base = _knowledge_base(request, slug)
    knowledge_base.delete()
    messages.success(request, f"Deleted {knowledge_base.name}. Deployments that used it answer on their own now.")
    return redirect("knowledge:index")
