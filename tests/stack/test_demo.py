"""The demo a newcomer gets on first start: Acme Shoes, its bot, its widget, its sentiment job."""

from finetune.models import FineTuneJob
from knowledge.models import AnswerPolicy, DeploymentKnowledge
from knowledge.policy import DEFAULT_THRESHOLD
from stack.demo import (
    DEMO_BOT,
    ensure_demo_organization,
    ensure_demo_sentiment,
    ensure_demo_widget,
)
from store.models import Deployment
from tests.factories import make_tuned


def test_it_creates_the_demo_organization_once_with_stable_logins(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first = ensure_demo_organization()
    second = ensure_demo_organization()
    assert first.organization == second.organization and first.admin_password == second.admin_password
    assert first.organization.memberships.filter(role="admin", user__username=first.admin_email).exists()
    assert first.organization.memberships.filter(role="agent", user__username=first.agent_email).exists()
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o077 == 0


def test_it_deploys_the_bundled_bot_answering_from_acme_s_knowledge_base_and_embeds_it(db, catalog, settings,
                                                                                          tmp_path):
    settings.DATA_DIR = tmp_path
    organization = ensure_demo_organization().organization
    widget = ensure_demo_widget(organization, ["http://localhost:8001"])
    bot = Deployment.objects.get(organization=organization, slug=DEMO_BOT)
    assert bot.base_model.slug == "smollm2-135m-instruct"
    attached = DeploymentKnowledge.objects.get(deployment=bot)
    assert attached.policy == AnswerPolicy.QUOTE and attached.threshold == DEFAULT_THRESHOLD
    [source] = attached.knowledge_base.sources.all()
    assert source.versions.get().passage_count == 31 and source.url.startswith("https://")
    assert bot.revisions.get(number=bot.revision).config["knowledge"]["knowledge_base"] == attached.knowledge_base_id
    assert widget.deployment == bot and widget.allowed_origins == ["http://localhost:8001"]
    assert ensure_demo_widget(organization, ["http://localhost:8001"]).pk == widget.pk
    assert attached.knowledge_base.sources.count() == 1  # a second start adds nothing


def test_it_switches_the_bot_to_the_tuned_faq_model_when_there_is_one(db, catalog, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    organization = ensure_demo_organization().organization
    ensure_demo_widget(organization, ["http://localhost:8001"])
    tuned = make_tuned(organization, catalog["smollm2-135m-instruct"], "acme-support-faq")
    ensure_demo_widget(organization, ["http://localhost:8001"])
    assert Deployment.objects.get(slug=DEMO_BOT).tuned_model == tuned


def test_it_queues_the_sentiment_model_once_then_deploys_it(db, catalog, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    organization = ensure_demo_organization().organization
    job = ensure_demo_sentiment(organization)
    assert isinstance(job, FineTuneJob) and job.status == "queued" and job.method == "full"
    assert job.dataset.row_count > 1000
    assert ensure_demo_sentiment(organization).pk == job.pk  # not a second job
    make_tuned(organization, catalog["all-minilm-l6-v2"], "acme-sentiment", task="sentiment", method="full",
               labels=["negative", "neutral", "positive"])
    deployment = ensure_demo_sentiment(organization)
    assert isinstance(deployment, Deployment) and deployment.task == "sentiment"
