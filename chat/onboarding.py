"""A new organization's way to a support bot on its website: the steps it has done and what is next.

Shown to the organization's admins on the storefront (where sign-up lands) until every step is done. Each
step is read from what exists (a live help centre, a deployment answering from it, a widget, an active
sentiment deployment, a teammate), never from a flag that could drift from it. The storefront is the store
app's, which imports no chat code: the steps reach its template through a context processor, computed only
where a template reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from django.http import HttpRequest
from django.urls import reverse

from accounts.models import Membership, Organization
from chat.models import Widget
from chat.widgets import default_sentiment_deployment
from knowledge.models import AnswerPolicy, DeploymentKnowledge, KnowledgeSource
from store.models import Task


@dataclass(frozen=True)
class Step:
    title: str
    detail: str
    url: str
    done: bool


def setup_steps(organization: Organization) -> list[Step]:
    has_knowledge = KnowledgeSource.objects.filter(knowledge_base__organization=organization,
                                                   live_version__isnull=False).exists()
    answering = DeploymentKnowledge.objects.filter(
        deployment__organization=organization, deployment__task=Task.DIALOGUE, knowledge_base__isnull=False,
    ).exclude(policy=AnswerPolicy.OFF).exists()
    has_widget = Widget.objects.filter(organization=organization).exists()
    scores_sentiment = default_sentiment_deployment(organization.pk) is not None
    has_team = Membership.objects.filter(organization=organization).count() > 1
    return [
        Step("Add your help centre", "Upload your FAQ or policies (Markdown, HTML, PDF, text or Q&A pairs), or "
             "paste them.", reverse("knowledge:index"), has_knowledge),
        Step("Deploy a bot that answers from it", "Deploy a dialogue model and attach the knowledge base on its "
             "page: it quotes your entries, cites them, and hands over when they do not cover a question.",
             reverse("store:deployment_list"), answering),
        Step("Put the chat widget on your website", "Create a widget for the bot, allow your site's address and "
             "paste its one-line snippet.", reverse("chat:widgets"), has_widget),
        Step("Score every customer message", "Tune a sentiment model on your customers' messages (or our "
             "example) and deploy it: the console sorts conversations by it and brings in a person when a "
             "customer gets upset.", reverse("finetune:dataset_upload"), scores_sentiment),
        Step("Invite your support agents", "They watch conversations live in the console, take over and reply.",
             reverse("accounts:members"), has_team),
    ]


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]

    @property
    def done(self) -> int:
        return sum(step.done for step in self.steps)


def pending_setup(organization: Organization | None, is_admin: bool) -> Checklist | None:
    """The checklist to show, or None when there is nothing to show (not an admin, or every step done)."""
    if organization is None or not is_admin:
        return None
    checklist = Checklist(setup_steps(organization))
    return None if checklist.done == len(checklist.steps) else checklist


def setup_checklist(request: HttpRequest) -> dict:
    """Context processor: `support_setup`, called (a few queries) only by a template that reads it."""
    membership = getattr(request, "membership", None)
    return {"support_setup": partial(pending_setup, getattr(request, "organization", None),
                                     membership is not None and membership.is_admin)}
