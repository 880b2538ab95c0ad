"""/v1 endpoints owned by fine-tuning: files and fine-tuning jobs, in OpenAI's shapes."""

from __future__ import annotations

import dataclasses
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import content_disposition_header

from core.bounds import BATCH_SIZE, EPOCHS, PAGE_SIZE, SEED
from finetune import jobs
from finetune.checkpoint_models import checkpoint_model_id
from finetune.datasets import create_dataset, delete_dataset
from finetune.models import Dataset, FineTuneJob, JobCheckpoint, JobEvent, JobStatus
from finetune.spec import Hyperparameters as TrainingHyperparameters
from store.api.auth import api_view, json_response, parse_json
from store.api.errors import ApiError, bad_request, not_found
from store.api.protocol import FineTuningJobCreate, Hyperparameters
from store.api.targets import find_target
from store.models import FoundationModel, TunedModel

DEFAULT_PAGE = 20


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def file_object(dataset: Dataset) -> dict:
    return {"id": dataset.openai_id, "object": "file", "bytes": dataset.size_bytes,
            "created_at": _ts(dataset.created_at), "filename": dataset.original_filename,
            "purpose": dataset.purpose, "status": "processed", "status_details": None}


def _page_size(request: HttpRequest) -> int:
    try:
        limit = int(request.GET.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise bad_request("limit must be an integer.", param="limit") from None
    if not PAGE_SIZE.contains(limit):
        raise bad_request(PAGE_SIZE.message(), param="limit")
    return limit


def _org_files(request: HttpRequest):
    return Dataset.objects.filter(organization_id=request.api_key.organization_id)  # type: ignore[attr-defined]


def _file(request: HttpRequest, file_id: str, param: str | None = None) -> Dataset:
    dataset = _org_files(request).filter(public_id=file_id.removeprefix("file-")).first() \
        if file_id.startswith("file-") else None
    if dataset is None:
        if param:
            raise bad_request(f"Invalid file ID {file_id!r}: no such file in your organization.", param=param,
                              code="invalid_file")
        raise not_found(f"No such File object: {file_id}", param="file_id")
    return dataset


def _upload(request: HttpRequest) -> dict:
    key = request.api_key  # type: ignore[attr-defined]
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.DATASET_MAX_BYTES + 64 * 1024:
        raise ApiError(413, f"File too large: the limit is {settings.DATASET_MAX_BYTES / 1e6:.0f} MB.", param="file",
                       code="file_too_large")
    if request.content_type != "multipart/form-data":
        raise bad_request(f"Upload files as multipart/form-data (with `file` and `purpose`), not "
                          f"{request.content_type or 'an untyped body'}.")
    try:
        purpose = request.POST.get("purpose")
    except MultiPartParserError as error:
        # Django refuses a body it cannot split (no boundary, a broken part) only when POST is read.
        raise bad_request(f"Malformed multipart/form-data body ({error}); send it with a boundary, as "
                          "HTTP clients do for a form with a file.") from None
    if purpose != "fine-tune":
        raise bad_request(f"Invalid purpose {purpose!r}: GPT Store stores files for purpose 'fine-tune'.",
                          param="purpose")
    upload = request.FILES.get("file")
    if upload is None:
        raise bad_request("Missing required parameter: 'file'.", param="file")
    if (upload.size or 0) > settings.DATASET_MAX_BYTES:
        raise ApiError(413, f"File too large: {upload.size} bytes (limit {settings.DATASET_MAX_BYTES}).",
                       param="file", code="file_too_large")
    result = create_dataset(key.organization, upload.read(), upload.name or "upload.jsonl")
    if result.dataset is None:
        problems = result.report.problems
        shown = "; ".join(str(p) for p in problems[:10])
        more = len(problems) - 10 + result.report.truncated_problem_count
        raise bad_request(f"Invalid file {upload.name!r}: {shown}{f' (and {more} more)' if more > 0 else ''}. "
                          "Nothing was stored.", param="file", code="invalid_file")
    return file_object(result.dataset)


@api_view(("GET", "POST"))
async def files(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return json_response(await sync_to_async(_upload)(request))

    def listing() -> dict:
        queryset = _org_files(request).order_by("-pk")  # newest first, as for jobs
        purpose = request.GET.get("purpose")
        if purpose:
            queryset = queryset.filter(purpose=purpose)
        after = request.GET.get("after")
        if after:
            queryset = queryset.filter(pk__lt=_file(request, after, param="after").pk)
        limit = _page_size(request)
        rows = list(queryset[:limit + 1])
        return {"object": "list", "data": [file_object(d) for d in rows[:limit]], "has_more": len(rows) > limit}

    return json_response(await sync_to_async(listing)())


@api_view(("GET", "DELETE"))
async def file_detail(request: HttpRequest, file_id: str) -> HttpResponse:
    def work() -> dict:
        dataset = _file(request, file_id)
        if request.method == "DELETE":
            try:
                delete_dataset(dataset)
            except ProtectedError:
                raise bad_request("This file is used by fine-tuning jobs; delete those first.",
                                  param="file_id") from None
            return {"id": file_id, "object": "file", "deleted": True}
        return file_object(dataset)

    return json_response(await sync_to_async(work)())


# What a stored file is served as: JSONL has no registered type; OpenAI's SDKs read the bytes whatever it says.
CONTENT_TYPES: dict[str, str] = {Dataset.Format.JSONL: "application/jsonl",
                                 Dataset.Format.CSV: "text/csv; charset=utf-8"}


@api_view(("GET",))
async def file_content(request: HttpRequest, file_id: str) -> HttpResponse:
    """The uploaded bytes, as stored (OpenAI's `client.files.content(id)`)."""

    def read() -> tuple[Dataset, bytes]:
        dataset = _file(request, file_id)
        try:
            with dataset.file.open("rb") as handle:
                return dataset, handle.read()
        except OSError:  # the row outlived its file (storage wiped by hand): say so, not a traceback
            raise ApiError(404, f"The content of {file_id} is missing from this server's storage.",
                           param="file_id", code="not_found") from None

    dataset, data = await sync_to_async(read)()
    response = HttpResponse(data, content_type=CONTENT_TYPES.get(dataset.file_format, "application/octet-stream"))
    response["Content-Disposition"] = content_disposition_header(True, dataset.original_filename) or "attachment"
    return response


# --- fine-tuning jobs -------------------------------------------------------------------------


def _hyper_summary(job: FineTuneJob) -> dict:
    hyper = job.hyperparameters
    default = jobs.hyperparameters_for(job.base_model, job.task, job.method, job.dataset.row_count).learning_rate
    multiplier = round(hyper["learning_rate"] / default, 6) if default else 1.0
    return {"n_epochs": hyper["epochs"], "batch_size": hyper["batch_size"], "learning_rate_multiplier": multiplier}


def job_object(job: FineTuneJob) -> dict:
    summary = _hyper_summary(job)
    running = job.status == JobStatus.RUNNING
    return {
        "id": job.openai_id, "object": "fine_tuning.job", "created_at": _ts(job.created_at),
        # What the job was asked to tune, as OpenAI echoes it: a catalog slug, or the ft: id it continues.
        "finished_at": _ts(job.finished_at), "model": job.parent_model_name or job.base_model.slug,
        "fine_tuned_model": job.tuned_model.openai_id if job.tuned_model else None,
        "organization_id": f"org-{job.organization.slug}", "status": job.status, "hyperparameters": summary,
        "method": {"type": "supervised", "supervised": {"hyperparameters": summary}},
        "training_file": job.dataset.openai_id,
        "validation_file": job.validation_dataset.openai_id if job.validation_dataset else None,
        "result_files": [], "trained_tokens": job.trained_tokens if job.status == JobStatus.SUCCEEDED else None,
        "error": ({"code": "training_failed", "message": job.error_message, "param": None}
                  if job.status == JobStatus.FAILED else None),
        "seed": job.hyperparameters.get("seed", 42),
        "estimated_finish": (int(time.time() + job.eta_seconds) if running and job.eta_seconds is not None
                             else None),
        "user_provided_suffix": job.suffix, "integrations": [], "metadata": None,
        "tuning": {"method": job.method, "task": job.task, "hyperparameters": job.hyperparameters,
                   "current_step": job.current_step, "total_steps": job.total_steps,
                   "train_loss": job.train_loss, "validation_loss": job.validation_loss,
                   "tokens_per_second": job.tokens_per_second,
                   "tuned_model": job.tuned_model.slug if job.tuned_model else None,
                   "parent_model": job.parent_model_name or None},
    }


def _jobs(request: HttpRequest):
    return FineTuneJob.objects.filter(organization_id=request.api_key.organization_id).select_related(  # type: ignore[attr-defined]
        "base_model", "dataset", "validation_dataset", "tuned_model__base", "tuned_model__organization",
        "organization")


def _job(request: HttpRequest, job_id: str) -> FineTuneJob:
    job = _jobs(request).filter(public_id=job_id.removeprefix("ftjob-")).first() if job_id.startswith("ftjob-") \
        else None
    if job is None:
        raise not_found(f"No fine-tuning job {job_id!r}.", param="fine_tuning_job_id")
    return job


# GPT Store's own hyperparameters (`tuning.hyperparameters`) that have a product-wide bound, so the 400 can name
# the field; jobs.create_job enforces the same bounds for every caller.
TUNING_BOUNDS = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "seed": SEED}
TUNING_NAMES = frozenset(field.name for field in dataclasses.fields(TrainingHyperparameters))


def _tuning_overrides(values: dict) -> dict:
    for name, value in values.items():
        param = f"tuning.hyperparameters.{name}"
        if name not in TUNING_NAMES:
            raise bad_request(f"Unknown hyperparameter {name!r}; GPT Store's are: {', '.join(sorted(TUNING_NAMES))}.",
                              param=param)
        if name in TUNING_BOUNDS and not TUNING_BOUNDS[name].contains(value):
            raise bad_request(TUNING_BOUNDS[name].message(), param=param)
    return dict(values)


def _overrides(body: FineTuningJobCreate, base: FoundationModel, dataset: Dataset, method: str) -> dict:
    if body.method is not None and body.method.type != "supervised":
        raise bad_request(f"Method type {body.method.type!r} is not supported; GPT Store does supervised "
                          "fine-tuning.", param="method.type", code="unsupported_parameter")
    legacy = body.hyperparameters
    nested = body.method.supervised.hyperparameters if body.method and body.method.supervised else None
    if legacy is not None and nested is not None:
        raise bad_request("Give hyperparameters either at the top level or under method, not both.",
                          param="hyperparameters")
    hyper: Hyperparameters = nested or legacy or Hyperparameters()
    overrides = _tuning_overrides(body.tuning.hyperparameters) if body.tuning else {}
    if hyper.n_epochs != "auto":
        overrides["epochs"] = hyper.n_epochs
    if hyper.batch_size != "auto":
        overrides["batch_size"] = hyper.batch_size
    if hyper.learning_rate_multiplier != "auto":
        default = jobs.hyperparameters_for(base, dataset.task, method, dataset.row_count).learning_rate
        overrides["learning_rate"] = default * float(hyper.learning_rate_multiplier)
    if body.seed is not None:
        overrides["seed"] = body.seed
    return overrides


def _starting_point(request: HttpRequest, model: str) -> tuple[FoundationModel, TunedModel | None]:
    """The foundation model a job tunes and, to continue training, the tuned model it starts from. Named as
    any /v1 model is (store/api/targets.py): unknown ids and other organizations' answer the same 404."""
    target = find_target(request.api_key, model)  # type: ignore[attr-defined]
    if target.kind == "base":
        return FoundationModel.objects.get(slug=target.model_id), None
    if target.tuned is not None:
        return target.tuned.base, target.tuned
    if target.kind == "deployment":
        raise bad_request(f"{model!r} is a deployment; fine-tune the model it serves ({target.parent or target.root}) "
                          "instead.", param="model")
    raise bad_request(f"{model!r} is a checkpoint of a fine-tuning job; continue training from the job's tuned model "
                      "(its fine_tuned_model) instead.", param="model")


def _create_job(request: HttpRequest, body: FineTuningJobCreate) -> dict:
    key = request.api_key  # type: ignore[attr-defined]
    # Accepted by the schema for SDK compatibility, but not kept: refused when set rather than dropped.
    if body.integrations:
        raise bad_request("Integrations (e.g. Weights & Biases) are not supported.", param="integrations",
                          code="unsupported_parameter")
    if body.metadata:
        raise bad_request("Job metadata is not stored; omit it.", param="metadata", code="unsupported_parameter")
    base, parent = _starting_point(request, body.model)
    dataset = _file(request, body.training_file, param="training_file")
    validation = _file(request, body.validation_file, param="validation_file") if body.validation_file else None
    method = (body.tuning.method if body.tuning and body.tuning.method else None) or (
        parent.method if parent else jobs.default_method(base, dataset.task))
    try:
        job = jobs.create_job(key.organization, base, dataset, task=dataset.task, method=method,
                              overrides=_overrides(body, base, dataset, method), suffix=body.suffix or "",
                              validation_dataset=validation, parent=parent)
    except jobs.TooManyActiveJobs as error:
        raise ApiError(429, " ".join(error.errors), code="too_many_active_jobs") from None
    except jobs.JobRequestError as error:
        raise bad_request(" ".join(error.errors), param="model") from None
    except (TypeError, ValueError) as error:
        raise bad_request(f"Invalid tuning hyperparameters: {error}", param="tuning.hyperparameters") from None
    return job_object(_jobs(request).get(pk=job.pk))


@api_view(("GET", "POST"))
async def fine_tuning_jobs(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        body = parse_json(request, FineTuningJobCreate)
        return json_response(await sync_to_async(_create_job)(request, body))

    def listing() -> dict:
        queryset = _jobs(request).order_by("-pk")  # newest first; ids grow with creation
        after = request.GET.get("after")
        if after:
            queryset = queryset.filter(pk__lt=_job(request, after).pk)
        limit = _page_size(request)
        rows = list(queryset[:limit + 1])
        return {"object": "list", "data": [job_object(j) for j in rows[:limit]], "has_more": len(rows) > limit}

    return json_response(await sync_to_async(listing)())


@api_view(("GET",))
async def fine_tuning_job(request: HttpRequest, job_id: str) -> HttpResponse:
    return json_response(await sync_to_async(lambda: job_object(_job(request, job_id)))())


@api_view(("POST",))
async def cancel_fine_tuning_job(request: HttpRequest, job_id: str) -> HttpResponse:
    def work() -> dict:
        job = _job(request, job_id)
        if not job.is_active:
            raise bad_request(f"Job {job_id} has already {job.status}; it cannot be cancelled.",
                              param="fine_tuning_job_id")
        jobs.request_cancel(job)
        return job_object(_jobs(request).get(pk=job.pk))

    return json_response(await sync_to_async(work)())


def event_object(event: JobEvent) -> dict:
    return {"id": event.openai_id, "object": "fine_tuning.job.event", "created_at": _ts(event.created_at),
            "level": event.level, "message": event.message, "type": event.type, "data": event.data or None}


@api_view(("GET",))
async def fine_tuning_job_events(request: HttpRequest, job_id: str) -> HttpResponse:
    def listing() -> dict:
        events = _job(request, job_id).events.order_by("-pk")
        after = request.GET.get("after")
        if after:
            try:
                events = events.filter(pk__lt=int(after.removeprefix("ftevent-")))
            except ValueError:
                raise bad_request("after must be an event id like ftevent-123.", param="after") from None
        limit = _page_size(request)
        rows = list(events[:limit + 1])
        return {"object": "list", "data": [event_object(e) for e in rows[:limit]], "has_more": len(rows) > limit}

    return json_response(await sync_to_async(listing)())


def checkpoint_object(job: FineTuneJob, checkpoint: JobCheckpoint) -> dict:
    return {"id": checkpoint.openai_id, "object": "fine_tuning.job.checkpoint",
            "created_at": _ts(checkpoint.created_at),
            "fine_tuned_model_checkpoint": checkpoint_model_id(job, checkpoint),
            "fine_tuning_job_id": job.openai_id, "step_number": checkpoint.step, "metrics": checkpoint.metrics}


@api_view(("GET",))
async def fine_tuning_job_checkpoints(request: HttpRequest, job_id: str) -> HttpResponse:
    def listing() -> dict:
        job = _job(request, job_id)
        limit = _page_size(request)
        rows = [checkpoint_object(job, c) for c in job.checkpoints.order_by("-step")[:limit + 1]]
        data = rows[:limit]
        return {"object": "list", "data": data, "has_more": len(rows) > limit,
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    return json_response(await sync_to_async(listing)())
