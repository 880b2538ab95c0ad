from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db.models import ProtectedError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from core.charts import Series, line_chart
from finetune import jobs
from finetune.datasets import create_dataset, request_token_stats, resplit
from finetune.examples import EXAMPLES, create_example_dataset
from finetune.forms import HYPERPARAMETER_FIELDS, DatasetUploadForm, JobForm, ResplitForm
from finetune.jobs import JobRequestError
from finetune.knowledge_pairs import TooFewPairs, create_pairs_dataset
from finetune.models import Dataset, FineTuneJob, JobEvent
from finetune.validation import DatasetTooLarge, check_size
from knowledge.models import KnowledgeBase
from store.models import FoundationModel, TunedModel


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


@organization_admin_required
def index(request: HttpRequest) -> HttpResponse:
    organization = _org(request)
    return render(request, "finetune/index.html", {
        "jobs": FineTuneJob.objects.filter(organization=organization).select_related("base_model", "tuned_model")[:50],
        "datasets": Dataset.objects.filter(organization=organization)[:50],
        "tuned_models": TunedModel.objects.filter(organization=organization).select_related("base")[:50],
    })


@organization_admin_required
def job_list_partial(request: HttpRequest) -> HttpResponse:
    jobs_ = FineTuneJob.objects.filter(organization=_org(request)).select_related("base_model", "tuned_model")[:50]
    return render(request, "finetune/partials/job_list.html", {"jobs": jobs_})


# --- datasets ---------------------------------------------------------------------------------


@csrf_exempt  # the size check must run before Django parses (and buffers) the body; CSRF is checked right after
def dataset_upload(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            check_size(int(request.META.get("CONTENT_LENGTH") or 0), settings.DATASET_MAX_BYTES + 64 * 1024)
        except DatasetTooLarge as error:
            return render(request, "finetune/dataset_upload.html",
                          {"form": DatasetUploadForm(), "problems": [str(error)]}, status=413)
    return csrf_protect(_dataset_upload)(request)


@organization_admin_required
def _dataset_upload(request: HttpRequest) -> HttpResponse:
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    context: dict = {"form": form, "problems": [], "max_mb": settings.DATASET_MAX_BYTES / 1e6,
                     "knowledge_bases": KnowledgeBase.objects.filter(organization=_org(request)),
                     "examples": EXAMPLES}
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            check_size(upload.size)
        except DatasetTooLarge as error:
            context["problems"] = [str(error)]
            return render(request, "finetune/dataset_upload.html", context, status=413)
        result = create_dataset(
            _org(request), upload.read(), upload.name, name=form.cleaned_data["name"],
            task=form.cleaned_data["task"] or None, user=request.user, ratios=form.ratios,
            seed=form.cleaned_data["seed"], token_stats_base=form.cleaned_data["token_stats_base"],
        )
        if result.dataset is not None:
            messages.success(request, f"{result.dataset.name}: {result.dataset.row_count} valid rows.")
            return redirect("finetune:dataset_detail", result.dataset.public_id)
        context["problems"] = [str(p) for p in result.report.problems]
        context["more_problems"] = result.report.truncated_problem_count
        return render(request, "finetune/dataset_upload.html", context, status=400)
    return render(request, "finetune/dataset_upload.html", context)


@require_POST
@organization_admin_required
def dataset_from_knowledge(request: HttpRequest, kb_id: int) -> HttpResponse:
    """A retrieval dataset of a knowledge base's own questions and passages (finetune/knowledge_pairs.py)."""
    knowledge_base = get_for_organization(KnowledgeBase, _org(request), pk=kb_id)
    try:
        result = create_pairs_dataset(_org(request), knowledge_base, user=request.user)
    except TooFewPairs as error:
        messages.error(request, str(error))
        return redirect("finetune:dataset_upload")
    if result.dataset is None:
        messages.error(request, f"The pairs of {knowledge_base.name} did not validate: "
                                f"{'; '.join(str(p) for p in result.report.problems[:5])}")
        return redirect("finetune:dataset_upload")
    messages.success(request, f"{result.dataset.name}: {result.dataset.row_count} question–passage pairs.")
    return redirect("finetune:dataset_detail", result.dataset.public_id)


@require_POST
@organization_admin_required
def dataset_from_example(request: HttpRequest, key: str) -> HttpResponse:
    """The organization's own copy of a bundled example dataset (finetune/examples.py)."""
    if key not in EXAMPLES:
        raise Http404("No such example dataset.")
    result = create_example_dataset(_org(request), key, user=request.user)
    assert result.dataset is not None, "a bundled example validates"  # tests/finetune/test_examples.py
    messages.success(request, f"{result.dataset.name}: {result.dataset.row_count} valid rows. Tune a model on it.")
    return redirect("finetune:dataset_detail", result.dataset.public_id)


@require_POST
@organization_admin_required
def answer_recipe_from_knowledge(request: HttpRequest, kb_id: int) -> HttpResponse:
    """A dialogue dataset that teaches a chat model to answer from passages (finetune/answer_recipe.py)."""
    from finetune.answer_recipe import TooFewExamples, create_recipe_dataset

    knowledge_base = get_for_organization(KnowledgeBase, _org(request), pk=kb_id)
    try:
        result = create_recipe_dataset(_org(request), knowledge_base, user=request.user)
    except TooFewExamples as error:
        messages.error(request, str(error))
        return redirect("knowledge:detail", knowledge_base.slug)
    if result.dataset is None:
        messages.error(request, f"The examples of {knowledge_base.name} did not validate: "
                                f"{'; '.join(str(p) for p in result.report.problems[:5])}")
        return redirect("knowledge:detail", knowledge_base.slug)
    messages.success(request, f"{result.dataset.name}: {result.dataset.row_count} examples. Fine-tune a chat model "
                              "on it, then deploy it with the grounded policy.")
    return redirect("finetune:dataset_detail", result.dataset.public_id)


def _dataset(request: HttpRequest, public_id: str) -> Dataset:
    return get_for_organization(Dataset, _org(request), public_id=public_id)


def _dataset_context(dataset: Dataset) -> dict:
    return {"dataset": dataset, "bases": FoundationModel.objects.all(),
            "jobs": dataset.jobs.select_related("base_model")[:20]}


@organization_admin_required
def dataset_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    dataset = _dataset(request, public_id)
    return render(request, "finetune/dataset_detail.html", _dataset_context(dataset))


@organization_admin_required
def dataset_stats_partial(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "finetune/partials/dataset_stats.html", _dataset_context(_dataset(request, public_id)))


@require_POST
@organization_admin_required
def dataset_token_stats(request: HttpRequest, public_id: str) -> HttpResponse:
    dataset = _dataset(request, public_id)
    base = FoundationModel.objects.filter(slug=request.POST.get("base")).first()
    if base is None:
        messages.error(request, "Pick a base model to count tokens with.")
    else:
        request_token_stats(dataset, base)
    return redirect("finetune:dataset_detail", public_id)


@require_POST
@organization_admin_required
def dataset_resplit(request: HttpRequest, public_id: str) -> HttpResponse:
    dataset = _dataset(request, public_id)
    form = ResplitForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        errors = resplit(dataset, [data["train_percent"] / 100, data["validation_percent"] / 100,
                                   data["test_percent"] / 100], data["seed"])
        for error in errors:
            messages.error(request, error)
        if not errors:
            messages.success(request, "Split updated.")
    else:
        messages.error(request, "Give whole percentages for train, validation and test, and a seed.")
    return redirect("finetune:dataset_detail", public_id)


@organization_admin_required
def dataset_download(request: HttpRequest, public_id: str) -> FileResponse:
    """The stored file, to admins of its organization only: /media/ is never served publicly."""
    dataset = _dataset(request, public_id)
    if not dataset.file.name or not dataset.file.storage.exists(dataset.file.name):
        raise Http404("The file of this dataset is missing on this server.")
    return FileResponse(dataset.file.open("rb"), as_attachment=True, filename=dataset.original_filename)


@require_POST
@organization_admin_required
def dataset_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    from finetune.datasets import delete_dataset

    dataset = _dataset(request, public_id)
    try:
        delete_dataset(dataset)
    except ProtectedError:
        messages.error(request, f"{dataset.name} is used by fine-tuning jobs; delete those jobs first.")
        return redirect("finetune:dataset_detail", public_id)
    messages.success(request, f"Deleted {dataset.name} and its file.")
    return redirect("finetune:index")


# --- jobs -------------------------------------------------------------------------------------


def _defaults_context(request: HttpRequest, form: JobForm) -> dict:
    base = FoundationModel.objects.filter(slug=form.data.get("base") or form.initial.get("base")).first()
    dataset = Dataset.objects.filter(organization=_org(request),
                                     pk=form.data.get("dataset") or form.initial.get("dataset") or 0).first()
    defaults = None
    method = form.data.get("method") or request.GET.get("method") or ""
    if base is not None and dataset is not None and base.supports(dataset.task):
        method = method or jobs.default_method(base, dataset.task)
        defaults = jobs.hyperparameters_for(base, dataset.task, method, dataset.row_count).to_dict()
    return {"defaults": defaults, "hyper_fields": [form[name] for name in HYPERPARAMETER_FIELDS],
            "chosen_method": method, "chosen_base": base, "chosen_dataset": dataset}


@organization_admin_required
def job_new(request: HttpRequest) -> HttpResponse:
    organization = _org(request)
    initial = _suggested_pair(organization, request.GET.get("base"), request.GET.get("dataset"))
    form = JobForm(request.POST or None, organization=organization, initial=initial)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = jobs.create_job(organization, data["base"], data["dataset"], method=data["method"] or None,
                                  overrides=form.overrides(), suffix=data["suffix"], user=request.user)
        except JobRequestError as error:
            errors = error.errors
        else:
            return redirect("finetune:job_detail", job.public_id)
    context = {"form": form, "errors": errors, **_defaults_context(request, form)}
    return render(request, "finetune/job_new.html", context, status=400 if errors else 200)


def _suggested_pair(organization, base_slug: str | None, dataset_id: str | None) -> dict:
    """The form's first choices: what the link named ("Fine-tune on it", "Fine-tune it"), and for the
    other one the only choice that fits it — the only base model that tunes the dataset's task, the
    only dataset of the organization the base model can learn from. Where several fit, the person picks."""
    base = FoundationModel.objects.filter(slug=base_slug or "").first()
    dataset = Dataset.objects.filter(organization=organization, pk=int(dataset_id)).first() \
        if dataset_id and dataset_id.isdigit() else None
    if dataset is not None and base is None:
        fitting = [model for model in FoundationModel.objects.order_by("pk") if model.supports(dataset.task)]
        base = fitting[0] if len(fitting) == 1 else None
    elif base is not None and dataset is None:
        fitting_data = [d for d in Dataset.objects.filter(organization=organization) if base.supports(d.task)]
        dataset = fitting_data[0] if len(fitting_data) == 1 else None
    return {"base": base.slug if base else base_slug, "dataset": dataset.pk if dataset else dataset_id}


@organization_admin_required
def job_defaults_partial(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.GET, organization=_org(request))
    return render(request, "finetune/partials/job_hyperparameters.html", _defaults_context(request, form))


def _job(request: HttpRequest, public_id: str) -> FineTuneJob:
    queryset = FineTuneJob.objects.select_related("base_model", "dataset", "tuned_model")
    return get_for_organization(queryset, _org(request), public_id=public_id)


def loss_chart(job: FineTuneJob) -> str:
    train, validation = [], []
    for data in job.events.filter(type=JobEvent.Type.METRICS).values_list("data", flat=True):
        step = data.get("step")
        if step is None:
            continue
        if data.get("train_loss") is not None:
            train.append((step, data["train_loss"]))
        if data.get("validation_loss") is not None:
            validation.append((step, data["validation_loss"]))
    return line_chart([Series("training loss", train, "#4f46e5"),
                       Series("validation loss", validation, "#e1590c", markers=True)],
                      x_label="optimizer step", y_label="loss", title="Loss curve")


def _job_context(job: FineTuneJob) -> dict:
    return {"job": job, "chart": loss_chart(job), "events": list(job.events.order_by("-created_at", "-pk")[:40]),
            "checkpoints": job.checkpoints.all()[:5]}


@organization_admin_required
def job_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "finetune/job_detail.html", _job_context(_job(request, public_id)))


@organization_admin_required
def job_live_partial(request: HttpRequest, public_id: str) -> HttpResponse:
    return render(request, "finetune/partials/job_live.html", _job_context(_job(request, public_id)))


@require_POST
@organization_admin_required
def job_cancel(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id)
    if not job.is_active:  # the page offered Cancel before the job finished
        messages.info(request, f"The job had already finished: {job.get_status_display().lower()}.")
        return redirect("finetune:job_detail", public_id)
    job = jobs.request_cancel(job)
    messages.info(request, "Job cancelled." if job.status == "cancelled" else "Stopping the job…")
    return redirect("finetune:job_detail", public_id)


@require_POST
@organization_admin_required
def job_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    job = _job(request, public_id)
    try:
        jobs.delete_job(job)
    except JobRequestError as error:
        messages.error(request, error.errors[0])
        return redirect("finetune:job_detail", public_id)
    messages.success(request, "Job and its checkpoints deleted.")
    return redirect("finetune:index")
