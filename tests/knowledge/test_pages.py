"""Knowledge pages: admins of the organization only; bad files refused with the reason and nothing stored."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import sources
from knowledge.models import DeploymentKnowledge, KnowledgeBase, KnowledgeSource
from store import deploy
from tests.knowledge.conftest import SMALL_FAQ


@pytest.fixture
def faq_source(knowledge_base, alice):
    return sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, user=alice.user)


def test_an_admin_creates_a_knowledge_base(alice, catalog):
    response = alice.client.post("/knowledge/", {"name": "Help centre", "description": "",
                                                 "embedding_model": "all-minilm-l6-v2"})
    assert response.status_code == 302
    knowledge_base = KnowledgeBase.objects.get(organization=alice.organization)
    assert knowledge_base.embedding_key == "encoder:all-minilm-l6-v2"
    assert alice.client.get("/knowledge/").content.count(b"Help centre") >= 1
    # The same name again: said on the form (it was a server error), nothing created.
    response = alice.client.post("/knowledge/", {"name": "Help centre", "description": "",
                                                 "embedding_model": "all-minilm-l6-v2"})
    assert response.status_code == 200
    assert "You already have a knowledge base called &#x27;help-centre&#x27;" in response.content.decode()
    assert KnowledgeBase.objects.filter(organization=alice.organization).count() == 1


def test_the_pages_show_the_sources_and_passages(alice, knowledge_base, faq_source):
    page = alice.client.get(f"/knowledge/{knowledge_base.slug}/").content.decode()
    assert "FAQ" in page and "queued" in page
    assert page.count('>URL:</label>') == 2  # the upload and the paste forms (Django would say "Url")
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "an element id used twice: a label would focus the other form's field"
    detail = alice.client.get(f"/knowledge/{knowledge_base.slug}/sources/{faq_source.pk}/").content.decode()
    assert "Shipping › How much does shipping cost?" in detail and "$12.95" in detail


def test_uploading_a_valid_file_stores_it(alice, knowledge_base):
    upload = SimpleUploadedFile("faq.md", SMALL_FAQ.encode(), content_type="text/markdown")
    response = alice.client.post(f"/knowledge/{knowledge_base.slug}/upload/", {"file": upload, "title": "",
                                                                               "url": ""})
    assert response.status_code == 302
    assert knowledge_base.sources.get().versions.get().passage_count == 3


def test_a_bad_upload_is_refused_naming_its_line_and_nothing_is_stored(alice, knowledge_base):
    upload = SimpleUploadedFile("pairs.jsonl", b'{"question": "a", "answer": "b"}\n{"question": "c"}\n')
    response = alice.client.post(f"/knowledge/{knowledge_base.slug}/upload/", {"file": upload})
    assert response.status_code == 400
    assert "line 2: missing &#x27;answer&#x27;" in response.content.decode()
    assert not KnowledgeSource.objects.exists()


def test_an_oversized_upload_is_refused_before_it_is_read(alice, knowledge_base, settings):
    settings.KNOWLEDGE_MAX_BYTES = 1000
    upload = SimpleUploadedFile("faq.md", b"# FAQ\n\n" + b"x" * 200_000)
    response = alice.client.post(f"/knowledge/{knowledge_base.slug}/upload/", {"file": upload})
    assert response.status_code == 413 and b"KNOWLEDGE_MAX_BYTES" in response.content
    assert not KnowledgeSource.objects.exists()


def test_editing_a_source_makes_a_new_version(alice, knowledge_base, faq_source):
    response = alice.client.post(f"/knowledge/{knowledge_base.slug}/sources/{faq_source.pk}/",
                                 {"text": SMALL_FAQ.replace("$12.95", "$13.95")})
    assert response.status_code == 302
    assert list(faq_source.versions.values_list("number", flat=True)) == [2, 1]


def test_a_teammate_agent_and_an_outsider_cannot_see_or_change_it(bob, charlie, knowledge_base, faq_source):
    slug = knowledge_base.slug
    for path in ("/knowledge/", f"/knowledge/{slug}/", f"/knowledge/{slug}/sources/{faq_source.pk}/"):
        assert bob.client.get(path).status_code == 403
    for path in (f"/knowledge/{slug}/", f"/knowledge/{slug}/sources/{faq_source.pk}/", f"/knowledge/{slug}/live/"):
        assert charlie.client.get(path).status_code == 404
    assert charlie.client.post(f"/knowledge/{slug}/sources/{faq_source.pk}/delete/").status_code == 404
    assert charlie.client.post(f"/knowledge/{slug}/paste/", {"title": "x", "text": "y"}).status_code == 404
    assert charlie.client.post(f"/knowledge/{slug}/delete/").status_code == 404
    assert KnowledgeSource.objects.filter(pk=faq_source.pk).exists()
    assert "Help centre" not in charlie.client.get("/knowledge/").content.decode()


def test_deployment_settings_are_revisions_that_rollback_restores(alice, knowledge_base, catalog):
    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    response = alice.client.post("/deployments/bot/knowledge/", {
        "knowledge_base": knowledge_base.pk, "policy": "quote", "threshold": "0.6", "when_unsure": "handoff"})
    assert response.status_code == 302
    bot.refresh_from_db()
    assert bot.revision == 2
    settings_ = DeploymentKnowledge.objects.get(deployment=bot)
    assert (settings_.knowledge_base, settings_.policy, settings_.threshold) == (knowledge_base, "quote", 0.6)
    alice.client.post("/deployments/bot/knowledge/", {"knowledge_base": "", "policy": "off", "threshold": "0.5",
                                                      "when_unsure": "continue"})
    bot.refresh_from_db()
    assert bot.revision == 3 and not DeploymentKnowledge.objects.get(deployment=bot).active
    deploy.rollback(bot, 2)
    settings_.refresh_from_db()
    assert (settings_.knowledge_base, settings_.policy, settings_.threshold) == (knowledge_base, "quote", 0.6)
    deploy.rollback(bot, 1)  # from before knowledge: nothing attached
    settings_.refresh_from_db()
    assert settings_.knowledge_base is None


def test_a_deployment_cannot_use_another_organization_s_knowledge_base(alice, charlie, knowledge_base, catalog):
    bot = deploy.create_or_update(charlie.organization, "bot",
                                  deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    response = charlie.client.post("/deployments/bot/knowledge/", {
        "knowledge_base": knowledge_base.pk, "policy": "quote", "threshold": "0.5", "when_unsure": "handoff"})
    assert response.status_code == 302  # back to the page with the form's error
    assert not DeploymentKnowledge.objects.filter(deployment=bot, knowledge_base=knowledge_base).exists()
    assert alice.client.get("/deployments/bot/knowledge/").status_code == 404


def test_the_admin_shows_an_org_admin_only_their_knowledge(alice, charlie, knowledge_base, faq_source, catalog):
    sources.create_knowledge_base(charlie.organization, "Charlie secrets")
    page = alice.client.get("/admin/knowledge/knowledgebase/").content.decode()
    assert "Help centre" in page and "Charlie secrets" not in page
    assert alice.client.get(f"/admin/knowledge/knowledgesource/{faq_source.pk}/change/").status_code == 200
    assert charlie.client.get(f"/admin/knowledge/knowledgesource/{faq_source.pk}/change/").status_code == 302


def test_the_ask_box_and_the_console_say_when_the_passages_do_not_state_what_was_asked():
    from django.template.loader import render_to_string

    from knowledge.policy import DONT_KNOW_HANDOFF, Candidate
    from knowledge.replies import Outcome, ReplyResult

    found = Candidate(1, 1, "Shipping › How much does shipping cost?", "Express costs $12.95.", confidence=0.9)
    result = ReplyResult(DONT_KNOW_HANDOFF, Outcome.DID_NOT_KNOW, confidence=0.9, unstated="year", candidates=[found])
    page = render_to_string("knowledge/partials/ask_result.html",
                            {"result": result, "candidates": [found], "threshold": 0.6})
    assert "asks for a year and the passages found state none" in page and "Not confident enough" not in page
    confident_miss = ReplyResult(DONT_KNOW_HANDOFF, Outcome.DID_NOT_KNOW, confidence=0.3)
    page = render_to_string("knowledge/partials/ask_result.html",
                            {"result": confident_miss, "candidates": [found], "threshold": 0.6})
    assert "Not confident enough" in page and "asks for a" not in page


def test_every_page_says_an_outcome_in_the_same_words(alice, catalog):
    """The ask box, the console (template filter) and the playground (its JSON for the script) all take
    an outcome's words from store/api/protocol.py: none shows the raw code word."""
    import json

    from django.template.loader import render_to_string

    from knowledge.replies import Outcome, ReplyResult
    from store.api.protocol import OUTCOME_LABELS
    from store.templatetags.store_extras import outcome_label

    quoted = ReplyResult("Express costs $12.95.", Outcome.QUOTED, confidence=0.9)
    page = render_to_string("knowledge/partials/ask_result.html",
                            {"result": quoted, "candidates": [], "threshold": 0.6})
    assert f"{OUTCOME_LABELS['quoted']} · confidence 0.90" in page
    assert outcome_label(Outcome.REPLACED) == OUTCOME_LABELS["replaced"] != "replaced"
    assert outcome_label("something new") == "something new"  # an outcome without words shows as it is
    assert set(OUTCOME_LABELS) == set(Outcome)  # every outcome has its words

    deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    page = alice.client.get("/deployments/bot/").content.decode()
    opening = '<script id="pg-outcomes" type="application/json">'
    start = page.index(opening) + len(opening)
    assert json.loads(page[start:page.index("</script>", start)]) == OUTCOME_LABELS


def test_a_new_bot_is_offered_the_organization_s_only_knowledge_base_until_its_settings_are_saved(
        alice, knowledge_base, catalog):
    deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    page = alice.client.get("/deployments/bot/knowledge/").content.decode()
    assert 'id="knowledge-suggested"' in page and f'<option value="{knowledge_base.pk}" selected>' in page
    assert not DeploymentKnowledge.objects.filter(deployment__slug="bot").exists()  # offered, not attached
    alice.client.post("/deployments/bot/knowledge/", {"knowledge_base": "", "policy": "off", "threshold": "0.6",
                                                      "when_unsure": "handoff"})
    page = alice.client.get("/deployments/bot/knowledge/").content.decode()
    assert 'id="knowledge-suggested"' not in page and f'<option value="{knowledge_base.pk}" selected>' not in page
    sources.create_knowledge_base(alice.organization, "Second")
    deploy.create_or_update(alice.organization, "bot-two", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    assert 'id="knowledge-suggested"' not in alice.client.get("/deployments/bot-two/knowledge/").content.decode()


def test_a_server_rendered_reply_carries_its_sources_titles_for_the_bold_headings():
    from django.template.loader import render_to_string

    from knowledge.policy import Candidate
    from knowledge.replies import Outcome, ReplyResult

    passage = Candidate(1, 1, "Shipping › How much is “express”?", "Express costs $12.95.", confidence=0.9)
    quoted = ReplyResult("How much is “express”?\nExpress costs $12.95.", Outcome.QUOTED, confidence=0.9,
                         passages=[passage])
    page = render_to_string("knowledge/partials/ask_result.html", {"result": quoted, "candidates": [passage],
                                                                   "threshold": 0.6})
    assert 'data-quote-sources="[&quot;Shipping › How much is “express”?&quot;]"' in page
    unknown = ReplyResult("I don't know that one.", Outcome.DID_NOT_KNOW, confidence=0.2)
    page = render_to_string("knowledge/partials/ask_result.html", {"result": unknown, "candidates": [],
                                                                   "threshold": 0.6})
    assert "data-quote-sources" not in page
