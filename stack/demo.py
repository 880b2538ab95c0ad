"""The demo organization a newcomer lands in on first start.

Passwords are generated on first start and kept in var/ (git-ignored, mode 600), so they are
printed on every start but never live in the repository.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Membership, Organization, Role

DEMO_ORG_NAME = "Acme Shoes"
DEMO_ORG_SLUG = "acme-shoes"
DEMO_ADMIN_EMAIL = "admin@acme-shoes.example"
DEMO_AGENT_EMAIL = "agent@acme-shoes.example"


@dataclass
class DemoLogins:
    organization: Organization
    admin_email: str
    admin_password: str
    agent_email: str
    agent_password: str


def _credentials_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-credentials.json"


def _load_or_create_passwords() -> dict[str, str]:
    path = _credentials_file()
    if path.exists():
        return json.loads(path.read_text())
    passwords = {DEMO_ADMIN_EMAIL: secrets.token_urlsafe(9), DEMO_AGENT_EMAIL: secrets.token_urlsafe(9)}
    path.write_text(json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


@transaction.atomic
def ensure_demo_organization() -> DemoLogins:
    """Create Acme Shoes with an admin and an agent (idempotent)."""
    passwords = _load_or_create_passwords()
    organization, _ = Organization.objects.get_or_create(slug=DEMO_ORG_SLUG, defaults={"name": DEMO_ORG_NAME})
    User = get_user_model()
    for email, role, first in ((DEMO_ADMIN_EMAIL, Role.ADMIN, "Ada"), (DEMO_AGENT_EMAIL, Role.AGENT, "Sam")):
        user, created = User.objects.get_or_create(
            username=email, defaults={"email": email, "first_name": first, "last_name": "(demo)"}
        )
        if created or not user.check_password(passwords[email]):
            user.set_password(passwords[email])
            user.save()
        Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": role})
    return DemoLogins(organization, DEMO_ADMIN_EMAIL, passwords[DEMO_ADMIN_EMAIL],
                      DEMO_AGENT_EMAIL, passwords[DEMO_AGENT_EMAIL])


# --- the demo models, bot and widget (first start of `manage.py runstack`) ---------------------

DEMO_BOT = "acme-support"
DEMO_SENTIMENT = "acme-sentiment"
DEMO_FAQ_SUFFIX = "acme-support-faq"
DEMO_WIDGET_TITLE = "Acme Shoes help"
DEMO_KNOWLEDGE = "Acme help centre"
DEMO_KNOWLEDGE_FILE = "acme-faq.md"
DEMO_KNOWLEDGE_URL = "https://acme-shoes.example/help"
DEMO_CUSTOMER_ID = "demo-customer-1"
TRAINING_SYSTEM_PROMPT = ("You are the customer support assistant of Acme Shoes, an online shoe store. Answer in a "
                          "friendly, concise way, using only Acme Shoes' policies.")


def ensure_demo_knowledge(organization: Organization):
    """Acme's help centre (acme-faq.md) as a knowledge base; an inference worker embeds it on first start."""
    from knowledge import sources
    from knowledge.models import KnowledgeBase

    knowledge_base = KnowledgeBase.objects.filter(organization=organization, name=DEMO_KNOWLEDGE).first()
    if knowledge_base is None:
        knowledge_base = sources.create_knowledge_base(organization, DEMO_KNOWLEDGE,
                                                       "Shipping, orders, returns, sizes, payment, warranty, contact.")
    if not knowledge_base.sources.exists():
        from finetune.examples import DEMO_DATA

        path = DEMO_DATA / DEMO_KNOWLEDGE_FILE
        sources.add_file(knowledge_base, path.read_bytes(), path.name, url=DEMO_KNOWLEDGE_URL)
    return knowledge_base


def ensure_demo_bot(organization: Organization):
    """Deploy the tuned FAQ model when one exists, else the bundled SmolLM2; either answers from Acme's
    knowledge base with the default policy for its size (the bundled 135M model quotes)."""
    from knowledge import deployments
    from knowledge.policy import DEFAULT_THRESHOLD
    from store import deploy
    from store.models import FoundationModel, TunedModel

    tuned = TunedModel.objects.filter(organization=organization, suffix=DEMO_FAQ_SUFFIX, task="dialogue").first()
    if tuned is not None:
        choice, prompt = deploy.ModelChoice(tuned=tuned), tuned.default_system_prompt or TRAINING_SYSTEM_PROMPT
    else:
        choice = deploy.ModelChoice(base=FoundationModel.objects.get(slug="smollm2-135m-instruct"))
        prompt = TRAINING_SYSTEM_PROMPT
    bot = deploy.create_or_update(organization, DEMO_BOT, choice, name="Acme support bot", system_prompt=prompt,
                                  temperature=0.2, max_tokens=160)
    current = deployments.current(bot)
    if current.pk is None or current.knowledge_base is None:
        deployments.configure(bot, knowledge_base=ensure_demo_knowledge(organization),
                              policy=deployments.default_policy_for(bot), threshold=DEFAULT_THRESHOLD)
    return bot


def ensure_demo_sentiment(organization: Organization):
    """The tuned sentiment model deployed, or the job that trains it (queued on first start)."""
    from finetune import jobs
    from finetune.examples import create_example_dataset
    from finetune.models import ACTIVE_STATUSES, FineTuneJob, JobStatus
    from store import deploy
    from store.models import FoundationModel, TunedModel

    tuned = TunedModel.objects.filter(organization=organization, suffix=DEMO_SENTIMENT, task="sentiment").first()
    if tuned is not None:
        return deploy.create_or_update(organization, DEMO_SENTIMENT, deploy.ModelChoice(tuned=tuned),
                                       name="Acme sentiment")
    job = FineTuneJob.objects.filter(organization=organization, suffix=DEMO_SENTIMENT,
                                     status__in=ACTIVE_STATUSES).first()
    if job is not None:
        return job
    dataset = create_example_dataset(organization, "support-sentiment", name="Acme support messages").dataset
    assert dataset is not None, "the bundled dataset validates"
    base = FoundationModel.objects.get(slug="all-minilm-l6-v2")
    failed = FineTuneJob.objects.filter(organization=organization, suffix=DEMO_SENTIMENT,
                                        status=JobStatus.FAILED).exists()
    if failed:
        return None  # do not retrain in a loop; the admin sees the failed job on the fine-tuning page
    return jobs.create_job(organization, base, dataset, suffix=DEMO_SENTIMENT)


def ensure_demo_widget(organization: Organization, demo_origins: list[str]):
    from chat.models import Widget
    from chat.widgets import create_widget, normalize_origin

    bot = ensure_demo_bot(organization)
    widget = Widget.objects.filter(organization=organization, title=DEMO_WIDGET_TITLE).first()
    origins = sorted({normalize_origin(origin) for origin in demo_origins})
    if widget is None:
        return create_widget(organization, bot, None, origins, title=DEMO_WIDGET_TITLE,
                             greeting="Hi! I'm Acme's assistant. Ask me about orders, shipping, returns or sizes.",
                             color="#e1590c")
    if widget.allowed_origins != origins or widget.deployment_id != bot.pk:
        widget.allowed_origins, widget.deployment = origins, bot
        widget.save(update_fields=["allowed_origins", "deployment"])
    return widget
