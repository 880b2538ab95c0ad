"""An entry an agent marked wrong for a question no longer answers that question, or one worded nearly the
same; other questions it answers keep it. Retrieval is the real worker code with GPT Store Retrieval."""

import pytest

from knowledge import feedback, sources
from knowledge.models import WrongAnswer
from knowledge.replies import Outcome
from tests.knowledge.test_replies import acme_bot, reply  # noqa: F401  (acme_bot is a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_model]


FLAT_FEET = "What brand of running shoes do you recommend for flat feet?"
SIZING = "Do your shoes run true to size?"


def titles(result) -> list[str]:
    return [passage.title.split(" › ")[-1] for passage in result.passages]


def test_an_entry_marked_wrong_no_longer_answers_that_question(acme_bot, alice):  # noqa: F811
    knowledge_base = acme_bot.knowledge.knowledge_base
    _, wrong = reply(acme_bot, FLAT_FEET)  # the help centre does not say; the nearest entry is sizing
    assert wrong.outcome == Outcome.QUOTED and titles(wrong) == [SIZING]
    knowledge_base.refresh_from_db()
    revision = knowledge_base.revision

    mark = feedback.record_wrong_answer(knowledge_base, [FLAT_FEET], wrong.record()["passages"],
                                        marked_by=alice.user)
    knowledge_base.refresh_from_db()
    assert mark is not None and knowledge_base.revision == revision + 1  # workers rebuild their index

    _, again = reply(acme_bot, "which running shoes are best for flat feet")  # the same question, reworded
    assert SIZING not in titles(again) + [p.title.split(" › ")[-1] for p in again.related]
    assert again.outcome in (Outcome.DID_NOT_KNOW, Outcome.NOT_SURE) and again.handoff
    assert [title.split(" › ")[-1] for title in again.record()["marked_wrong"]] == [SIZING]  # kept for the console
    _, other = reply(acme_bot, "should i size up for running shoes")  # a question that entry does answer
    assert other.outcome == Outcome.QUOTED and titles(other)[0] == SIZING and "marked_wrong" not in other.record()

    feedback.forget_wrong_answer(mark)  # undone (admin): the entry may answer it again
    _, restored = reply(acme_bot, "which running shoes are best for flat feet")
    assert SIZING in titles(restored)


def test_the_worker_says_which_entries_it_set_aside(acme_bot, encoder_engine, alice):  # noqa: F811
    from knowledge import worker
    from knowledge.policy import retrieval_queries

    knowledge_base = acme_bot.knowledge.knowledge_base
    _, wrong = reply(acme_bot, FLAT_FEET)
    feedback.record_wrong_answer(knowledge_base, [FLAT_FEET], wrong.record()["passages"])
    knowledge_base.refresh_from_db()
    payload = {"knowledge_base": knowledge_base.pk, "index": knowledge_base.index_key, "k": 8,
               **retrieval_queries([{"role": "user", "content": FLAT_FEET}]).payload()}
    found = worker.retrieve(payload, encoder_engine)
    assert [title.split(" › ")[-1] for title in found["marked_wrong"]] == [SIZING]
    assert found["candidates"] and not any(c["title"].endswith(SIZING) for c in found["candidates"])


def test_a_follow_up_is_remembered_with_the_question_before_it(knowledge_base):
    passages = [{"source_id": 7, "title": "Shipping › How much does shipping cost?", "passage_id": 1}]
    mark = feedback.record_wrong_answer(knowledge_base, ["How much is shipping?", "and to Hawaii?"], passages)
    assert mark.question == "How much is shipping? and to Hawaii?"
    assert mark.entries == [[7, "Shipping › How much does shipping cost?"]]
    alone = feedback.record_wrong_answer(knowledge_base, ["Do you deliver to PO boxes?"], passages)
    assert alone.question == "Do you deliver to PO boxes?"


def test_a_reply_that_quoted_nothing_teaches_nothing(knowledge_base):
    revision = knowledge_base.revision
    assert feedback.record_wrong_answer(knowledge_base, ["Do you sell socks?"], []) is None
    knowledge_base.refresh_from_db()
    assert knowledge_base.revision == revision and not WrongAnswer.objects.exists()


def test_marks_are_held_per_knowledge_base(knowledge_base, charlie):
    other = sources.create_knowledge_base(charlie.organization, "Charlie help")
    passages = [{"source_id": 1, "title": "Shipping › Where do you ship?"}]
    feedback.record_wrong_answer(other, ["Do you deliver to PO boxes?"], passages)
    assert feedback.marks_to_hold(knowledge_base) == []
    assert feedback.marks_to_hold(other) == [("Do you deliver to PO boxes?",
                                              frozenset({(1, "Shipping › Where do you ship?")}))]


def test_the_ask_box_says_which_entries_were_set_aside(acme_bot, alice):  # noqa: F811
    knowledge_base = acme_bot.knowledge.knowledge_base
    _, wrong = reply(acme_bot, FLAT_FEET)
    feedback.record_wrong_answer(knowledge_base, [FLAT_FEET], wrong.record()["passages"])
    knowledge_base.refresh_from_db()
    html = alice.client.post(f"/knowledge/{knowledge_base.slug}/ask/", {"question": FLAT_FEET}).content.decode()
    note = html.split('id="ask-marked-wrong"')[1].split("</p>")[0]
    assert "marked wrong by an agent" in note and SIZING in note
    other = alice.client.post(f"/knowledge/{knowledge_base.slug}/ask/", {"question": "should i size up?"})
    assert other.status_code == 200 and "ask-marked-wrong" not in other.content.decode()
