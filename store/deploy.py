"""Deployments: create or update (every change is a revision), switch version, roll back, pause."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from accounts.models import Organization
from store.inference import client as inference
from store.inference.protocol import GenerationRequest
from store.models import (
    DEFAULT_SYSTEM_PROMPT,
    Deployment,
    DeploymentRevision,
    DeploymentStatus,
    FoundationModel,
    Task,
    TunedModel,
)
from upstreams.client import stream_upstream
from upstreams.models import UpstreamModel

CONFIG_FIELDS = ("name", "system_prompt", "temperature", "top_p", "max_tokens", "status")


@dataclass(frozen=True)
class RevisionPart:
    """Settings another app keeps for a deployment (its knowledge base, say) that revisions must
    cover: `snapshot` returns them as JSON, `restore` puts a snapshot back (None: never recorded).
    The store knows nothing of them beyond that."""

    snapshot: Callable[[Deployment], dict]
    restore: Callable[[Deployment, dict | None], None]


_revision_parts: dict[str, RevisionPart] = {}


def register_revision_part(name: str, snapshot: Callable[[Deployment], dict],
                           restore: Callable[[Deployment, dict | None], None]) -> None:
    """Called from an app's ready(): its settings join every revision from then on."""
    _revision_parts[name] = RevisionPart(snapshot, restore)


# Another app may let an organization serve tuned models it does not own (the marketplace: versions of
# listings it installed). Each grant returns the ids of such models for an organization; the store knows
# nothing of why. The deployment then points at the owner's row, so it is served from the owner's
# artifact under the same engine key (`tuned:<id>`): one loaded copy for every organization.
_model_grants: dict[str, Callable[[Organization], Iterable[int]]] = {}


def register_model_grant(name: str, granted: Callable[[Organization], Iterable[int]]) -> None:
    """Called from an app's ready(): `granted(organization)` names foreign tuned models it may deploy."""
    _model_grants[name] = granted


def granted_tuned_ids(organization: Organization) -> set[int]:
    return {pk for granted in _model_grants.values() for pk in granted(organization)}


def may_serve(organization: Organization, tuned: TunedModel) -> bool:
    return tuned.organization_id == organization.pk or tuned.pk in granted_tuned_ids(organization)


@dataclass
class ModelChoice:
    tuned: TunedModel | None = None
    base: FoundationModel | None = None
    upstream: UpstreamModel | None = None  # the organization's hosted model: always dialogue

    @property
    def task(self) -> str:
        if self.upstream is not None:
            return Task.DIALOGUE
        if self.tuned is not None:
            return self.tuned.task
        assert self.base is not None
        return Task.DIALOGUE if self.base.supports_dialogue else Task.SENTIMENT


def find_model(organization: Organization, reference: str) -> ModelChoice:
    """A tuned model of the organization (slug, short id or ft: id), one of its upstreams (`upstream:<id>`) or a
    catalog base model (slug)."""
    reference = reference.strip()
    if reference.startswith("upstream:"):
        pk = reference.removeprefix("upstream:")
        upstream = UpstreamModel.objects.filter(organization=organization, pk=pk).first() if pk.isdigit() else None
        if upstream is None:  # another organization's upstream looks exactly like a missing one
            raise ValidationError({"model": f"No hosted model called {reference!r}."})
        return ModelChoice(upstream=upstream)
    tuned = TunedModel.objects.filter(organization=organization).select_related("base")
    for lookup in ({"slug": reference}, {"short_id": reference.rsplit(":", 1)[-1]} if reference.startswith("ft:")
                   else {"short_id": reference}):
        found = tuned.filter(**lookup).first()
        if found is not None:
            return ModelChoice(tuned=found)
    granted = TunedModel.objects.filter(pk__in=granted_tuned_ids(organization)).select_related("base")
    if reference.startswith("ft:"):
        found = granted.filter(short_id=reference.rsplit(":", 1)[-1]).first()
        found = found if found is not None and found.openai_id == reference else None
    else:
        # By short id, or by slug when only one granted model has it (two publishers may share a slug).
        found = granted.filter(short_id=reference).first()
        by_slug = list(granted.filter(slug=reference)[:2])
        found = found or (by_slug[0] if len(by_slug) == 1 else None)
    if found is not None:
        return ModelChoice(tuned=found)
    base = FoundationModel.objects.filter(slug=reference).first()
    if base is not None:
        return ModelChoice(base=base)
    raise ValidationError({"model": f"No tuned model or catalog model called {reference!r}."})


def check_slug(organization: Organization, slug: str, deployment: Deployment | None = None) -> str:
    slug = slugify(slug)[:60]
    if not slug:
        raise ValidationError({"slug": "Give the deployment a name made of letters, digits and dashes."})
    # A deployment's slug is its /v1 model id: it must not shadow a catalog model or look like an ft: id.
    if FoundationModel.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"{slug!r} is the id of a catalog model; pick another name."})
    clash = Deployment.objects.filter(organization=organization, slug=slug)
    if deployment is not None:
        clash = clash.exclude(pk=deployment.pk)
    if clash.exists():
        raise ValidationError({"slug": f"You already have a deployment called {slug!r}."})
    return slug


def _snapshot(deployment: Deployment, note: str, user=None) -> DeploymentRevision:
    config = {field: getattr(deployment, field) for field in CONFIG_FIELDS}
    config.update({name: part.snapshot(deployment) for name, part in _revision_parts.items()})
    return DeploymentRevision.objects.create(
        deployment=deployment, number=deployment.revision, tuned_model=deployment.tuned_model,
        base_model=deployment.base_model, upstream_model=deployment.upstream_model, config=config, note=note[:200],
        created_by=user,
    )


@transaction.atomic
def new_revision(deployment: Deployment, note: str, user=None) -> Deployment:
    """Record the deployment's current settings (its own and its registered parts') as a new revision."""
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    deployment.revision += 1
    deployment.save(update_fields=["revision", "updated_at"])
    _snapshot(deployment, note, user)
    return deployment


def _validate_config(values: dict) -> None:
    errors = {}
    if "temperature" in values and not 0 <= float(values["temperature"]) <= 2:
        errors["temperature"] = "Temperature must be between 0 and 2."
    if "top_p" in values and not 0 < float(values["top_p"]) <= 1:
        errors["top_p"] = "top_p must be in (0, 1]."
    if "max_tokens" in values and not 1 <= int(values["max_tokens"]) <= 4096:
        errors["max_tokens"] = "max_tokens must be between 1 and 4096."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def create_or_update(organization: Organization, slug: str, model: ModelChoice, user=None, **config) -> Deployment:
    """Idempotent by slug: creates the deployment or moves it to `model` and `config` as a new revision."""
    _validate_config(config)
    if model.tuned is not None and not may_serve(organization, model.tuned):
        raise ValidationError({"model": "That tuned model does not exist."})
    if model.upstream is not None and model.upstream.organization_id != organization.pk:
        raise ValidationError({"model": "That hosted model does not exist."})
    existing = Deployment.objects.select_for_update().filter(organization=organization, slug=slugify(slug)).first()
    if existing is None:
        slug = check_slug(organization, slug)
        deployment = Deployment(organization=organization, slug=slug, name=config.pop("name", None) or slug,
                                task=model.task, tuned_model=model.tuned, base_model=model.base,
                                upstream_model=model.upstream, revision=1)
        if deployment.task == Task.DIALOGUE and not config.get("system_prompt"):
            trained_prompt = model.tuned.default_system_prompt if model.tuned else ""
            config["system_prompt"] = trained_prompt or DEFAULT_SYSTEM_PROMPT
        for field, value in config.items():
            setattr(deployment, field, value)
        deployment.save()
        _snapshot(deployment, "created", user)
        return deployment
    changed = (existing.tuned_model_id, existing.base_model_id, existing.upstream_model_id) != (
        model.tuned.pk if model.tuned else None, model.base.pk if model.base else None,
        model.upstream.pk if model.upstream else None)
    if changed and model.task != existing.task:
        raise ValidationError({"model": f"{existing.slug} serves {existing.task}; that model does {model.task}."})
    config_changed = any(getattr(existing, f) != v for f, v in config.items() if v is not None)
    if not changed and not config_changed:
        return existing
    existing.tuned_model, existing.base_model, existing.upstream_model = model.tuned, model.base, model.upstream
    for field, value in config.items():
        if value is not None:
            setattr(existing, field, value)
    existing.revision += 1
    existing.save()
    _snapshot(existing, "model switched" if changed else "settings changed", user)
    return existing


@transaction.atomic
def rollback(deployment: Deployment, number: int, user=None) -> Deployment:
    """Re-apply revision `number` as a new revision (history is never rewritten)."""
    revision = DeploymentRevision.objects.filter(deployment=deployment, number=number).first()
    if revision is None:
        raise ValidationError(f"{deployment.slug} has no revision {number}.")
    if revision.tuned_model_id is None and revision.base_model_id is None and revision.upstream_model_id is None:
        raise ValidationError(f"The model of revision {number} was deleted; it cannot be restored.")
    if revision.tuned_model is not None and not may_serve(deployment.organization, revision.tuned_model):
        raise ValidationError(f"The model of revision {number} is no longer installed; it cannot be restored.")
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    deployment.tuned_model_id, deployment.base_model_id = revision.tuned_model_id, revision.base_model_id
    deployment.upstream_model_id = revision.upstream_model_id
    for field in CONFIG_FIELDS:
        if field in revision.config:
            setattr(deployment, field, revision.config[field])
    deployment.revision += 1
    deployment.save()
    for name, part in _revision_parts.items():
        part.restore(deployment, revision.config.get(name))
    _snapshot(deployment, f"rolled back to revision {number}", user)
    return deployment


def set_status(deployment: Deployment, status: str, user=None) -> Deployment:
    if status not in DeploymentStatus.values:
        raise ValidationError(f"Unknown status {status!r}.")
    return create_or_update(deployment.organization, deployment.slug,
                            ModelChoice(tuned=deployment.tuned_model, base=deployment.base_model,
                                        upstream=deployment.upstream_model), user, status=status)


def delete_deployment(deployment: Deployment) -> None:
    deployment.delete()


UPSTREAM_PREFIX = "upstream:"


def stream_generation(request: GenerationRequest) -> AsyncGenerator[inference.StreamEvent, None]:
    """Who generates a reply: the one place that decides. A hosted model (`upstream:<id>`, store.models.engine_key)
    is streamed from its OpenAI-compatible upstream by this web process; everything else goes to an inference
    worker. Both speak the same events and raise InferenceError / InferenceUnavailable."""
    if request.model_key.startswith(UPSTREAM_PREFIX):
        return stream_upstream(int(request.model_key.removeprefix(UPSTREAM_PREFIX)), request)
    return inference.stream_generation(request)
