"""A dialogue deployment's knowledge settings: which knowledge base, how it answers, what it does when
unsure. Every change is a deployment revision, and rolling a deployment back restores them
(registered with store.deploy in KnowledgeConfig.ready)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from knowledge.models import AnswerPolicy, DeploymentKnowledge, KnowledgeBase, WhenUnsure
from knowledge.policy import DEFAULT_THRESHOLD, default_policy
from store import deploy
from store.models import Deployment, Task

REVISION_PART = "knowledge"


def default_policy_for(deployment: Deployment) -> str:
    """By the served model's size; a hosted model's size is the upstream's (unknown, 0), and grounded
    answers suit the large models hosted services run."""
    base = deployment.base
    return default_policy(base.parameter_count if base is not None else 0)


def current(deployment: Deployment) -> DeploymentKnowledge:
    """The deployment's settings, or the defaults (nothing attached) as an unsaved row."""
    existing = DeploymentKnowledge.objects.filter(deployment=deployment).select_related("knowledge_base").first()
    if existing is not None:
        return existing
    return DeploymentKnowledge(deployment=deployment, knowledge_base=None,
                               policy=default_policy_for(deployment), threshold=DEFAULT_THRESHOLD,
                               when_unsure=WhenUnsure.HANDOFF)


def _validate(deployment: Deployment, knowledge_base: KnowledgeBase | None, policy: str, threshold: float,
              when_unsure: str) -> None:
    errors = {}
    if deployment.task != Task.DIALOGUE:
        errors["knowledge_base"] = "Only dialogue deployments answer from a knowledge base."
    if knowledge_base is not None and knowledge_base.organization_id != deployment.organization_id:
        errors["knowledge_base"] = "That knowledge base does not exist."
    if policy not in AnswerPolicy.values:
        errors["policy"] = f"Unknown answer policy {policy!r}."
    if when_unsure not in WhenUnsure.values:
        errors["when_unsure"] = f"Unknown choice {when_unsure!r}."
    if not 0.0 <= threshold <= 1.0:
        errors["threshold"] = "The confidence threshold is between 0 and 1."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def configure(deployment: Deployment, *, knowledge_base: KnowledgeBase | None, policy: str, threshold: float,
              when_unsure: str = WhenUnsure.HANDOFF, user=None) -> DeploymentKnowledge:
    """Attach (or detach, with None) a knowledge base; a new deployment revision when anything changed."""
    _validate(deployment, knowledge_base, policy, threshold, when_unsure)
    settings, _ = DeploymentKnowledge.objects.select_for_update().update_or_create(
        deployment=deployment, defaults={"knowledge_base": knowledge_base, "policy": policy,
                                         "threshold": float(threshold), "when_unsure": when_unsure})
    latest = deployment.revisions.order_by("-number").first()
    recorded = latest.config.get(REVISION_PART) if latest is not None else None
    if recorded != snapshot(deployment, settings):
        deploy.new_revision(deployment, "knowledge settings changed", user)
    return settings


def snapshot(deployment: Deployment, settings: DeploymentKnowledge | None = None) -> dict:
    settings = settings or current(deployment)
    return {"knowledge_base": settings.knowledge_base_id, "policy": settings.policy,
            "threshold": settings.threshold, "when_unsure": settings.when_unsure}


def restore(deployment: Deployment, data: dict | None) -> None:
    """Put a revision's knowledge settings back; a revision from before knowledge had none attached."""
    data = data or {"knowledge_base": None, "policy": default_policy_for(deployment),
                    "threshold": DEFAULT_THRESHOLD, "when_unsure": WhenUnsure.HANDOFF}
    knowledge_base = None
    if data.get("knowledge_base") is not None:
        knowledge_base = KnowledgeBase.objects.filter(pk=data["knowledge_base"],
                                                      organization_id=deployment.organization_id).first()
    DeploymentKnowledge.objects.update_or_create(deployment=deployment, defaults={
        "knowledge_base": knowledge_base, "policy": data.get("policy", AnswerPolicy.QUOTE),
        "threshold": float(data.get("threshold", DEFAULT_THRESHOLD)),
        "when_unsure": data.get("when_unsure", WhenUnsure.HANDOFF)})
