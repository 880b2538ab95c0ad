"""The review page lists the questions the bot did not know, most asked first, each with a way to write
its answer in the knowledge base the deployment answers from; only the organization's own."""

from datetime import timedelta

from django.utils import timezone

from chat import agents
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.insights import UNKNOWN_QUESTIONS_SHOWN, unknown_questions
from chat.models import Author, Message
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from knowledge.policy import DONT_KNOW_HANDOFF
from store.api.protocol import Outcome


def _asked(widget, question: str, outcome: str, reply: str = DONT_KNOW_HANDOFF):
    conversation = current_conversation(open_visitor(widget), create=True)
    append_message(conversation, Author.CUSTOMER, question)
    append_message(conversation, Author.BOT, reply, knowledge={"outcome": outcome, "confidence": 0.2})
    return conversation


def _period():
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(days=1)


def test_the_questions_the_bot_did_not_know_are_listed_most_asked_first(alice, widget):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Alice help")
    deployments.configure(widget.deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    first = _asked(widget, "Do you have a student discount?", Outcome.DID_NOT_KNOW)
    _asked(widget, "Can I pay with bitcoin?", Outcome.NOT_SURE, "I'm not sure I know the answer to that.")
    latest = _asked(widget, "  do you have a STUDENT discount?", Outcome.DID_NOT_KNOW)
    _asked(widget, "How much is shipping?", Outcome.QUOTED, "Shipping is free over $50.")

    listed = unknown_questions(alice.organization, *_period())
    assert [(item["question"], item["times"], item["outcome"]) for item in listed] == [
        ("do you have a STUDENT discount?", 2, Outcome.DID_NOT_KNOW),  # alike questions together, the latest's words
        ("Can I pay with bitcoin?", 1, Outcome.NOT_SURE)]
    assert listed[0]["conversation_id"] == latest.pk != first.pk
    assert listed[0]["knowledge_base"] == knowledge_base

    page = alice.client.get("/console/insights/").content.decode()
    section = page[page.index('id="unknown-questions"'):page.index("Most negative conversations")]
    assert section.index("STUDENT discount") < section.index("bitcoin") and "2×" in section
    assert f'href="/knowledge/{knowledge_base.slug}/?answer=do%20you%20have%20a%20STUDENT%20discount%3F#paste-form"' \
        in section
    assert f'href="/console/{latest.pk}/"' in section and "shipping" not in section


def test_the_write_answer_link_opens_the_paste_form_with_the_question(alice, widget):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Alice help")
    deployments.configure(widget.deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    _asked(widget, "Do you sell socks?", Outcome.DID_NOT_KNOW)
    page = alice.client.get("/console/insights/").content.decode()
    link = page[page.index('class="write-answer" href="') + len('class="write-answer" href="'):].split('"')[0]
    form = alice.client.get(link.replace("&amp;", "&")).content.decode()
    assert "### Do you sell socks?" in form and 'value="Do you sell socks?"' in form


def test_without_a_knowledge_base_the_question_is_listed_without_a_write_link(alice, widget):
    _asked(widget, "Do you sell socks?", Outcome.DID_NOT_KNOW)
    page = alice.client.get("/console/insights/").content.decode()
    section = page[page.index('id="unknown-questions"'):page.index("Most negative conversations")]
    assert "Do you sell socks?" in section and "write-answer" not in section


def test_an_empty_period_says_so(alice, widget):
    _asked(widget, "How much is shipping?", Outcome.QUOTED, "Shipping is free over $50.")
    page = alice.client.get("/console/insights/").content.decode()
    assert "The bot knew every question it was asked in this period, and no reply was marked wrong." in page


def test_only_the_period_and_the_most_asked_are_shown(alice, widget):
    old = _asked(widget, "Is there a loyalty card?", Outcome.DID_NOT_KNOW)
    Message.objects.filter(conversation=old).update(created_at=timezone.now() - timedelta(days=10))
    for number in range(UNKNOWN_QUESTIONS_SHOWN + 3):
        _asked(widget, f"Do you sell item number {number}?", Outcome.DID_NOT_KNOW)
    _asked(widget, "Do you sell item number 7?", Outcome.DID_NOT_KNOW)
    listed = unknown_questions(alice.organization, *_period())
    assert len(listed) == UNKNOWN_QUESTIONS_SHOWN and listed[0]["question"] == "Do you sell item number 7?"
    assert all("loyalty" not in item["question"] for item in listed)


def test_another_organizations_questions_are_never_listed(alice, bob, charlie, widget):
    _asked(widget, "Do you have a student discount?", Outcome.DID_NOT_KNOW)
    assert unknown_questions(charlie.organization, *_period()) == []
    assert "student discount" not in charlie.client.get("/console/insights/").content.decode()
    # A teammate who is an agent, not an admin, does not see the review page at all.
    assert bob.client.get("/console/insights/").status_code == 403


def test_a_question_whose_answer_was_written_since_says_so(alice, widget):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Alice help")
    deployments.configure(widget.deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    _asked(widget, "Do you sell socks?", Outcome.DID_NOT_KNOW)
    _asked(widget, "Do you do repairs?", Outcome.DID_NOT_KNOW)
    sources.add_text(knowledge_base, "do you sell  SOCKS?", "### Do you sell socks?\n\nNo, only shoes.")
    listed = {item["question"]: item["answer_written"] for item in unknown_questions(alice.organization, *_period())}
    assert listed == {"Do you sell socks?": True, "Do you do repairs?": False}
    page = alice.client.get("/console/insights/").content.decode()
    section = page[page.index('id="unknown-questions"'):page.index("Most negative conversations")]
    assert section.count("Answer written") == 1 and section.count('class="write-answer"') == 1
    assert "answer=Do%20you%20do%20repairs%3F" in section


def test_a_reply_an_agent_marked_wrong_is_listed_with_a_write_link(alice, bob, widget):
    """The agent's "mark wrong" brings the question to the review page, so its right answer gets written."""
    knowledge_base = sources.create_knowledge_base(alice.organization, "Alice help")
    deployments.configure(widget.deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    wrong = _asked(widget, "Do you deliver to PO boxes?", Outcome.QUOTED, "We ship to the United States and Canada.")
    _asked(widget, "How much is shipping?", Outcome.QUOTED, "Shipping is free over $50.")  # right: not marked
    _asked(widget, "Do you sell socks?", Outcome.DID_NOT_KNOW)
    agents.mark_wrong(wrong, bob.user, wrong.messages.get(author=Author.BOT).seq)

    listed = {item["question"]: (item["outcome"], item["marked_wrong"])
              for item in unknown_questions(alice.organization, *_period())}
    assert listed == {"Do you deliver to PO boxes?": (Outcome.QUOTED, True),
                      "Do you sell socks?": (Outcome.DID_NOT_KNOW, False)}
    page = alice.client.get("/console/insights/").content.decode()
    section = page[page.index('id="unknown-questions"'):page.index("Most negative conversations")]
    row = section[section.index("PO boxes"):]
    row = row[:row.index("</tr>")]
    assert "Marked wrong by an agent" in row and "answer=Do%20you%20deliver%20to%20PO%20boxes%3F" in row
    assert "How much is shipping?" not in section


def test_a_reply_marked_wrong_in_another_organization_is_never_listed(alice, bob, charlie, widget):
    wrong = _asked(widget, "Do you deliver to PO boxes?", Outcome.QUOTED, "We ship to the United States and Canada.")
    agents.mark_wrong(wrong, bob.user, wrong.messages.get(author=Author.BOT).seq)
    assert [item["question"] for item in unknown_questions(alice.organization, *_period())] == [
        "Do you deliver to PO boxes?"]
    assert unknown_questions(charlie.organization, *_period()) == []
