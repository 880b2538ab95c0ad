"""An agent's "Mark wrong" on a bot reply from knowledge: the reply stays, is counted, and the entries it
quoted are remembered as wrong for the customer's question (knowledge/feedback.py) in the knowledge base the
bot answers from; a reply that quoted nothing, or a second mark, teaches nothing more."""

import pytest
from django.core.exceptions import ValidationError

from chat import agents
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy, WrongAnswer
from store.api.protocol import Outcome

SIZING = {"passage_id": 3, "source_id": 11, "title": "Sizes › Do your shoes run true to size?", "url": "",
          "confidence": 0.71, "text": "Most Acme shoes are true to size."}


@pytest.fixture
def knowledge_base(alice, widget):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Alice help")
    deployments.configure(widget.deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    return knowledge_base


def _conversation(widget, *exchanges):
    conversation = current_conversation(open_visitor(widget), create=True)
    for question, outcome, passages in exchanges:
        append_message(conversation, Author.CUSTOMER, question)
        append_message(conversation, Author.BOT, "…", knowledge={"outcome": outcome, "passages": passages})
    return conversation


def _bot_seqs(conversation) -> list[int]:
    return list(conversation.messages.filter(author=Author.BOT).order_by("seq").values_list("seq", flat=True))


def test_marking_a_quoted_reply_wrong_remembers_its_entries_for_that_question(alice, bob, widget, knowledge_base):
    conversation = _conversation(widget, ("Which running shoes are best for flat feet?", Outcome.QUOTED, [SIZING]))
    revision = knowledge_base.revision
    [seq] = _bot_seqs(conversation)
    message = agents.mark_wrong(conversation, bob.user, seq)
    assert message.marked_wrong_at is not None and message.marked_wrong_by == bob.user
    [mark] = WrongAnswer.objects.all()
    assert (mark.knowledge_base, mark.question, mark.entries, mark.marked_by) == (
        knowledge_base, "Which running shoes are best for flat feet?", [[11, SIZING["title"]]], bob.user)
    knowledge_base.refresh_from_db()
    assert knowledge_base.revision == revision + 1

    agents.mark_wrong(conversation, bob.user, seq)  # marked again: nothing new
    assert WrongAnswer.objects.count() == 1


def test_a_follow_up_marked_wrong_is_remembered_with_the_question_before(bob, widget, knowledge_base):
    conversation = _conversation(widget, ("How much is shipping?", Outcome.QUOTED, [SIZING]),
                                 ("and to Hawaii?", Outcome.QUOTED, [SIZING]))
    agents.mark_wrong(conversation, bob.user, _bot_seqs(conversation)[-1])
    assert WrongAnswer.objects.get().question == "How much is shipping? and to Hawaii?"


def test_a_reply_that_quoted_nothing_is_counted_but_teaches_nothing(bob, widget, knowledge_base):
    conversation = _conversation(widget, ("Do you sell socks?", Outcome.DID_NOT_KNOW, []))
    message = agents.mark_wrong(conversation, bob.user, _bot_seqs(conversation)[0])
    assert message.marked_wrong_at is not None and not WrongAnswer.objects.exists()


def test_without_a_knowledge_base_nothing_is_remembered(bob, widget):
    conversation = _conversation(widget, ("Which running shoes are best for flat feet?", Outcome.QUOTED, [SIZING]))
    agents.mark_wrong(conversation, bob.user, _bot_seqs(conversation)[0])
    assert not WrongAnswer.objects.exists()


def test_only_a_bot_reply_can_be_marked_wrong(bob, widget, knowledge_base):
    conversation = _conversation(widget, ("Which running shoes are best for flat feet?", Outcome.QUOTED, [SIZING]))
    customer_seq = conversation.messages.get(author=Author.CUSTOMER).seq
    with pytest.raises(ValidationError):
        agents.mark_wrong(conversation, bob.user, customer_seq)
    assert not WrongAnswer.objects.exists()


def test_an_admin_undoes_a_mark_in_the_admin_and_the_workers_rebuild(alice, bob, charlie, widget, knowledge_base):
    from django.urls import reverse

    conversation = _conversation(widget, ("Which running shoes are best for flat feet?", Outcome.QUOTED, [SIZING]))
    agents.mark_wrong(conversation, bob.user, _bot_seqs(conversation)[0])
    mark = WrongAnswer.objects.get()
    knowledge_base.refresh_from_db()
    revision = knowledge_base.revision
    url = reverse("admin:knowledge_wronganswer_delete", args=[mark.pk])
    assert "flat feet" not in charlie.client.get(reverse("admin:knowledge_wronganswer_changelist")).content.decode()
    charlie.client.post(url, {"post": "yes"})
    assert WrongAnswer.objects.filter(pk=mark.pk).exists()  # another organization's admin cannot
    assert "flat feet" in alice.client.get(reverse("admin:knowledge_wronganswer_changelist")).content.decode()
    assert alice.client.post(url, {"post": "yes"}).status_code == 302
    assert not WrongAnswer.objects.exists()
    knowledge_base.refresh_from_db()
    assert knowledge_base.revision == revision + 1


def test_the_console_says_which_entries_a_reply_set_aside(bob, widget, knowledge_base):
    conversation = _conversation(widget, ("which running shoes are best for flat feet", Outcome.DID_NOT_KNOW, []))
    conversation.messages.filter(author=Author.BOT).update(
        knowledge={"outcome": Outcome.DID_NOT_KNOW, "passages": [], "marked_wrong": [SIZING["title"]]})
    page = bob.client.get(f"/console/{conversation.pk}/").content.decode()
    note = page.split('class="muted tmarked-wrong">')[1].split("</p>")[0]
    assert "marked wrong by an agent" in note and "Do your shoes run true to size?" in note
