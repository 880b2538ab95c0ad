import csv
import io
import json

import pytest

from chat import agents
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, CannedReply, Conversation, Message, Visitor
from chat.sentiment import record_sentiment


@pytest.fixture
def conversation(widget):
    visitor = open_visitor(widget, identity=None)
    conversation = current_conversation(visitor, create=True)
    message, _ = append_message(conversation, Author.CUSTOMER, "<b>Where</b> is my order??")
    record_sentiment(message, "negative", 0.9, {"negative": 0.9, "neutral": 0.05, "positive": 0.05})
    return conversation


def test_the_list_sorts_the_worst_conversations_first(alice, widget, conversation):
    happy_visitor = open_visitor(widget)
    happy = current_conversation(happy_visitor, create=True)
    message, _ = append_message(happy, Author.CUSTOMER, "thanks!")
    record_sentiment(message, "positive", 0.9, {"negative": 0.05, "neutral": 0.05, "positive": 0.9})
    page = alice.client.get("/console/").content.decode()
    assert page.index(f'data-conversation="{conversation.pk}"') < page.index(f'data-conversation="{happy.pk}"')
    recent = alice.client.get("/console/?sort=recent").content.decode()
    assert recent.index(f'data-conversation="{happy.pk}"') < recent.index(f'data-conversation="{conversation.pk}"')


def test_the_list_filters_by_status_and_searches_transcripts(alice, conversation):
    assert f'data-conversation="{conversation.pk}"' in alice.client.get("/console/?q=order").content.decode()
    assert f'data-conversation="{conversation.pk}"' not in alice.client.get("/console/?q=refund").content.decode()
    assert f'data-conversation="{conversation.pk}"' not in alice.client.get(
        "/console/?status=resolved").content.decode()


def test_html_in_messages_is_shown_as_text(alice, conversation):
    page = alice.client.get(f"/console/{conversation.pk}/").content.decode()
    assert "&lt;b&gt;Where&lt;/b&gt; is my order??" in page and "<b>Where</b>" not in page
    assert "<svg" in page  # the sentiment timeline
    assert 'badge-bad" title="0.90">negative' in page


def test_agents_reply_and_resolve_through_the_page(bob, conversation):
    bob.client.post(f"/console/{conversation.pk}/reply/", {"text": "On its way!"})
    bob.client.post(f"/console/{conversation.pk}/resolve/")
    conversation.refresh_from_db()
    assert conversation.status == "resolved" and conversation.resolved_by_human is True
    assert conversation.messages.filter(author="agent", text="On its way!", agent=bob.user).exists()


def test_an_empty_reply_is_refused(bob, conversation):
    response = bob.client.post(f"/console/{conversation.pk}/reply/", {"text": "  "})
    assert response.status_code == 302
    assert not conversation.messages.filter(author="agent").exists()


def test_outsiders_cannot_see_or_act_on_a_conversation(charlie, conversation):
    assert charlie.client.get(f"/console/{conversation.pk}/").status_code == 404
    assert charlie.client.post(f"/console/{conversation.pk}/reply/", {"text": "hi"}).status_code == 404
    assert f'data-conversation="{conversation.pk}"' not in charlie.client.get("/console/").content.decode()
    assert not conversation.messages.filter(author="agent").exists()


def test_canned_replies_are_managed_by_admins_and_offered_to_agents(alice, bob, charlie, conversation):
    alice.client.post("/console/canned/", {"title": "Shipping", "text": "Standard shipping takes 3–5 days."})
    assert bob.client.post("/console/canned/", {"title": "x", "text": "y"}).status_code == 403
    assert "Standard shipping takes 3–5 days." in bob.client.get(f"/console/{conversation.pk}/").content.decode()
    assert "Shipping" not in charlie.client.get("/console/canned/").content.decode()
    assert CannedReply.objects.count() == 1


def test_it_exports_transcripts_with_sentiment(alice, conversation):
    agents.note(conversation, alice.user, "call back tomorrow")
    rows = list(csv.DictReader(io.StringIO(alice.client.get("/console/export/?format=csv").getvalue().decode())))
    assert rows[0]["text"] == "<b>Where</b> is my order??" and rows[0]["sentiment_label"] == "negative"
    assert rows[-1]["internal"] == "True"
    data = json.loads(alice.client.get("/console/export/?format=json").getvalue())
    assert data["data"][0]["sentiment_score"] == 0.9


def test_exports_hold_only_this_organizations_conversations(charlie, conversation):
    rows = list(csv.DictReader(io.StringIO(charlie.client.get("/console/export/").getvalue().decode())))
    assert rows == []


def test_erasing_a_visitor_leaves_nothing_behind(alice, conversation):
    visitor = conversation.visitor
    Visitor.objects.filter(pk=visitor.pk).update(name="Dana", email="dana@example.com", external_id="cust-9")
    response = alice.client.post(f"/console/visitors/{visitor.pk}/erase/")
    assert response.status_code == 302
    assert not Visitor.objects.filter(pk=visitor.pk).exists()
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not Visitor.objects.filter(email="dana@example.com").exists()
    assert "<b>Where</b>" not in alice.client.get("/console/export/").getvalue().decode()


def test_only_admins_export_or_erase(bob, charlie, conversation):
    assert bob.client.get("/console/export/").status_code == 403
    assert bob.client.post(f"/console/visitors/{conversation.visitor_id}/erase/").status_code == 403
    assert charlie.client.post(f"/console/visitors/{conversation.visitor_id}/erase/").status_code == 404
    assert Visitor.objects.filter(pk=conversation.visitor_id).exists()


def test_the_review_dashboard_counts_what_happened(alice, conversation):
    agents.reply(conversation, alice.user, "Sorry about that")
    agents.resolve(conversation, alice.user)
    Conversation.objects.filter(pk=conversation.pk).update(csat=1)
    page = alice.client.get("/console/insights/").content.decode()
    assert "by people: <strong>1</strong>" in page and "100%" in page
    assert f'href="/console/{conversation.pk}/"' in page  # among the most negative


def test_the_timeline_says_why_messages_are_not_scored_when_no_sentiment_model_serves(alice, widget, conversation):
    from store import deploy
    from store.models import DeploymentStatus

    page = alice.client.get(f"/console/{conversation.pk}/").content.decode()
    assert 'id="no-scorer"' not in page and '<svg class="chart"' in page  # the widget's sentiment deployment
    deploy.set_status(widget.sentiment_deployment, DeploymentStatus.PAUSED, alice.user)
    page = alice.client.get(f"/console/{conversation.pk}/").content.decode()
    assert 'id="no-scorer"' in page and "not scored" in page and '<svg class="chart"' not in page
