"""A new organization's admin sees the steps to a support bot on their website on the storefront, each read
from what exists in their own organization, until all are done."""

import re

import pytest
from django.urls import reverse

from accounts.models import Membership, Role
from chat.onboarding import pending_setup
from chat.widgets import create_widget
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from store import deploy
from tests.factories import make_tuned
from tests.knowledge.conftest import SMALL_FAQ

pytestmark = pytest.mark.django_db


def progress(client) -> str | None:
    page = client.get(reverse("store:home")).content.decode()
    found = re.search(r"Set up your support bot <span[^>]*>(\d+ of \d+) done</span>", page)
    return found.group(1) if found else None


def done_steps(organization) -> list[str]:
    checklist = pending_setup(organization, is_admin=True)
    return [] if checklist is None else [step.title for step in checklist.steps if step.done]


def live_help_centre(organization, name: str = "Help centre"):
    knowledge_base = sources.create_knowledge_base(organization, name)
    source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ)
    source.live_version = source.versions.get()  # as the embedding worker leaves it (tests/knowledge/test_live.py)
    source.save(update_fields=["live_version"])
    return knowledge_base


def test_a_new_admin_sees_every_step_to_do(alice, catalog):
    assert progress(alice.client) == "0 of 5"
    page = alice.client.get(reverse("store:home")).content.decode()
    for link in (reverse("knowledge:index"), reverse("store:deployment_list"), reverse("chat:widgets"),
                 reverse("finetune:dataset_upload"), reverse("accounts:members")):
        assert f'href="{link}"' in page


def test_each_step_is_read_from_what_the_organization_has(alice, catalog):
    embedding = sources.create_knowledge_base(alice.organization, "Embedding")
    sources.add_text(embedding, "FAQ", SMALL_FAQ)
    assert done_steps(alice.organization) == []  # a source still embedding answers nobody yet

    knowledge_base = live_help_centre(alice.organization)
    assert done_steps(alice.organization) == ["Add your help centre"]

    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    assert done_steps(alice.organization) == ["Add your help centre"]  # deployed, but not answering from it
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.OFF, threshold=0.6)
    assert "Deploy a bot that answers from it" not in done_steps(alice.organization)
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    assert "Deploy a bot that answers from it" in done_steps(alice.organization)

    create_widget(alice.organization, bot, None, ["https://alice-shoes.example"])
    assert progress(alice.client) == "3 of 5"


def test_it_goes_once_every_step_is_done(alice, bob, catalog):
    knowledge_base = live_help_centre(alice.organization)
    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    assert progress(alice.client) == "3 of 5"  # bob, an agent, is the teammate
    create_widget(alice.organization, bot, None, ["https://alice-shoes.example"])
    assert progress(alice.client) == "4 of 5"
    moods = deploy.create_or_update(alice.organization, "moods", deploy.ModelChoice(tuned=make_tuned(
        alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment", method="full",
        labels=["negative", "neutral", "positive"])))
    assert progress(alice.client) is None
    assert pending_setup(alice.organization, is_admin=True) is None
    deploy.set_status(moods, "paused")
    assert progress(alice.client) == "4 of 5"  # a paused sentiment deployment scores nothing


def test_agents_outsiders_and_visitors_do_not_see_it_and_another_organization_counts_for_nothing(
        alice, bob, charlie, client, catalog):
    live_help_centre(alice.organization)
    assert progress(alice.client) == "2 of 5"
    assert progress(bob.client) is None  # an agent: setting up is the admins' job
    assert progress(charlie.client) == "0 of 5"  # alice's help centre and team are not charlie's
    assert progress(client) is None  # signed out
    Membership.objects.filter(pk=bob.membership.pk).update(role=Role.ADMIN)
    assert progress(bob.client) == "2 of 5"


def test_the_other_pages_do_not_compute_it(alice, catalog, django_assert_max_num_queries):
    """The steps cost four queries; a page that does not show them must not pay for them."""
    alice.client.get(reverse("store:usage"))  # warm sessions and caches
    with django_assert_max_num_queries(40) as captured:
        alice.client.get(reverse("store:usage"))
    assert not any("chat_widget" in query["sql"] for query in captured.captured_queries)
