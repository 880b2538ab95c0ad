"""What a `/v1` model id names, for one API key.

One id scheme without '/': a deployment's id is its slug; a tuned model's id is OpenAI-style
`ft:<base>:<org>:<suffix>:<short id>`; a base model's id is its catalog slug. A key restricted to
some deployments sees only those. Unknown and foreign ids look the same (404).

Apps built on the store serve ids of their own (a fine-tuning job's checkpoints,
`ft:…:ckpt-step-<n>`). The store cannot import them, so each registers a lookup here when Django
starts (finetune/apps.py); `find_target` stays the one place a /v1 model name is resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from store.api.errors import model_not_found
from store.models import ApiKey, Deployment, DeploymentStatus, FoundationModel, Task, TunedModel, engine_key


@dataclass
class Target:
    model_id: str
    kind: str  # "deployment" | "tuned" | "base"
    task: str
    model_key: str  # what the serving engine loads
    owned_by: str
    created: int
    root: str
    parent: str | None = None
    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    deployment: Deployment | None = None
    tuned: TunedModel | None = None  # kind "tuned": the model itself (a job continues training from it)
    paused: bool = False


def _deployment_target(d: Deployment) -> Target:
    base = d.base
    # A hosted model's root is the model its upstream serves.
    root = base.slug if base is not None else d.upstream_model.model_name  # type: ignore[union-attr]
    return Target(model_id=d.slug, kind="deployment", task=d.task, model_key=d.model_key,
                  owned_by=d.organization.slug, created=int(d.created_at.timestamp()), root=root,
                  parent=d.tuned_model.openai_id if d.tuned_model else None, system_prompt=d.system_prompt,
                  temperature=d.temperature, top_p=d.top_p, max_tokens=d.max_tokens, deployment=d,
                  paused=d.status == DeploymentStatus.PAUSED)


def _tuned_target(t: TunedModel) -> Target:
    return Target(model_id=t.openai_id, kind="tuned", task=t.task, model_key=f"tuned:{t.pk}",
                  owned_by=t.organization.slug, created=int(t.created_at.timestamp()), root=t.base.slug,
                  system_prompt=t.default_system_prompt, tuned=t)


def _base_target(b: FoundationModel) -> Target:
    # What a base model does through the API as it is: chat, or sentence embeddings (an encoder needs
    # tuning before it classifies).
    task = Task.DIALOGUE if b.supports_dialogue else Task.EMBEDDING if b.supports_embedding else Task.SENTIMENT
    return Target(model_id=b.slug, kind="base", task=task, model_key=engine_key(task, base_slug=b.slug),
                  owned_by="gpt-store", created=int(b.created_at.timestamp()), root=b.slug)


# (organization id, model id) -> its Target, or None when the id is not one the lookup serves (or not the org's).
ModelLookup = Callable[[int, str], Target | None]
_lookups: list[ModelLookup] = []


def register_lookup(lookup: ModelLookup) -> None:
    """Serve the `ft:` ids an app built on the store owns. Called from an AppConfig.ready(); idempotent."""
    if lookup not in _lookups:
        _lookups.append(lookup)


def _restricted(key: ApiKey) -> list[int]:
    return list(key.deployments.values_list("pk", flat=True))


def _deployments(key: ApiKey):
    deployments = Deployment.objects.filter(organization_id=key.organization_id).select_related(
        "organization", "tuned_model__base", "tuned_model__organization", "base_model", "upstream_model")
    allowed = _restricted(key)
    return deployments.filter(pk__in=allowed) if allowed else deployments


def visible_targets(key: ApiKey) -> list[Target]:
    targets = [_deployment_target(d) for d in _deployments(key)]
    if not _restricted(key):
        tuned = TunedModel.objects.filter(organization_id=key.organization_id).select_related("base", "organization")
        targets += [_tuned_target(t) for t in tuned]
        targets += [_base_target(b) for b in FoundationModel.objects.all()]
    return targets


def find_target(key: ApiKey, model_id: str) -> Target:
    deployment = _deployments(key).filter(slug=model_id).first()
    if deployment is not None:
        return _deployment_target(deployment)
    if not _restricted(key):
        if model_id.startswith("ft:"):
            short_id = model_id.rsplit(":", 1)[-1]
            tuned = TunedModel.objects.filter(organization_id=key.organization_id, short_id=short_id).select_related(
                "base", "organization").first()
            if tuned is not None and tuned.openai_id == model_id:
                return _tuned_target(tuned)
            for lookup in _lookups:
                found = lookup(key.organization_id, model_id)
                if found is not None:
                    return found
        else:
            base = FoundationModel.objects.filter(slug=model_id).first()
            if base is not None:
                return _base_target(base)
    raise model_not_found(model_id)


afind_target = sync_to_async(find_target)
avisible_targets = sync_to_async(visible_targets)
