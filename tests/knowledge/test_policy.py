"""Which passages answer, what the bot says when none does, and what a follow-up is looked up as."""

import pytest

from knowledge.models import AnswerPolicy
from knowledge.policy import (
    DONT_KNOW_HANDOFF,
    Candidate,
    decide,
    default_policy,
    dont_know_text,
    quote_text,
    retrieval_queries,
    small_talk,
)


def candidate(pk: int, confidence: float, text: str = "", query: int = 0) -> Candidate:
    return Candidate(pk, 1, f"Title {pk}", text or f"Passage {pk}.", confidence=confidence, query=query)


def test_it_answers_with_the_most_confident_passage_above_the_threshold():
    decision = decide([candidate(1, 0.4), candidate(2, 0.9), candidate(3, 0.2)], threshold=0.5)
    assert decision.answer and [p.passage_id for p in decision.passages] == [2]
    assert decision.confidence == 0.9


def test_it_adds_a_second_passage_when_it_is_nearly_as_confident():
    assert [p.passage_id for p in decide([candidate(1, 0.9), candidate(2, 0.8)], 0.5).passages] == [1, 2]
    assert [p.passage_id for p in decide([candidate(1, 0.9), candidate(2, 0.6)], 0.5).passages] == [1]


def test_each_part_of_a_two_part_question_brings_its_own_passage():
    found = [candidate(1, 0.95, query=2), candidate(2, 0.7, query=0), candidate(3, 0.6, query=3)]
    assert [p.passage_id for p in decide(found, 0.5, parts_from=2).passages] == [1, 3]
    assert [p.passage_id for p in decide(found, 0.5, parts_from=None).passages] == [1]
    assert [p.passage_id for p in decide(found, 0.65, parts_from=2).passages] == [1]  # the part's best is unsure


def test_below_the_threshold_it_does_not_guess():
    decision = decide([candidate(1, 0.49), candidate(2, 0.3)], threshold=0.5)
    assert not decision.answer and decision.passages == [] and decision.confidence == 0.49
    assert not decide([], 0.5).answer


def test_the_quote_answer_is_the_passages_themselves_under_their_headings():
    passages = [Candidate(1, 1, "Shipping › How much does shipping cost?", "Express costs $12.95.", confidence=0.9),
                Candidate(2, 1, "Returns", "30 days.", question="How long do I have?", confidence=0.8)]
    assert quote_text(passages) == ("How much does shipping cost?\nExpress costs $12.95.\n\n"
                                    "How long do I have?\n30 days.")


def test_not_knowing_offers_a_person_or_carries_on():
    assert dont_know_text(True) == DONT_KNOW_HANDOFF
    assert "shall I get someone" in DONT_KNOW_HANDOFF
    assert "get someone" not in dont_know_text(False)


def test_small_models_quote_and_larger_ones_phrase_from_the_passages():
    assert default_policy(134_515_008) == AnswerPolicy.QUOTE
    assert default_policy(7_000_000_000) == AnswerPolicy.GROUNDED


@pytest.mark.parametrize("text", ["hi", "Hello there!", "thanks!", "Thank you so much", "ok thanks", "cheers mate",
                                  "bye", "ok", "great"])
def test_small_talk_gets_a_friendly_reply_not_a_lookup(text):
    assert small_talk(text)


@pytest.mark.parametrize("text", ["hi, how much is express shipping?", "thanks but where is my order",
                                  "ok so can I return worn shoes?"])
def test_a_question_is_never_small_talk(text):
    assert small_talk(text) is None


def test_a_short_follow_up_is_looked_up_with_the_question_before_it():
    turns = [{"role": "user", "content": "How much is standard shipping?"},
             {"role": "assistant", "content": "It is $4.95."}, {"role": "user", "content": "and express?"}]
    lookup = retrieval_queries(turns)
    assert lookup.queries == ["and express?", "How much is standard shipping? and express?",
                              "How much is standard shipping?"]
    assert lookup.follow_up == 1
    assert lookup.parts_from is None


@pytest.mark.parametrize("text", ["is it free?", "how long?", "what if they don't fit?", "ok and for kids?"])
def test_a_message_that_refers_back_is_a_follow_up(text):
    turns = [{"role": "user", "content": "Do you ship to Canada?"}, {"role": "user", "content": text}]
    assert retrieval_queries(turns).follow_up == 1


def test_a_short_new_question_is_not_read_with_the_one_before():
    turns = [{"role": "user", "content": "hw much is express delivery??"},
             {"role": "user", "content": "What year was the company founded?"}]
    lookup = retrieval_queries(turns)
    assert lookup.queries == ["What year was the company founded?"]
    assert lookup.follow_up is None


def test_a_question_that_stands_on_its_own_is_looked_up_alone():
    turns = [{"role": "user", "content": "How much is standard shipping?"},
             {"role": "user", "content": "Can I return shoes I have worn outside at the gym twice?"}]
    assert retrieval_queries(turns).queries == ["Can I return shoes I have worn outside at the gym twice?"]


def test_a_message_that_asks_two_things_is_also_looked_up_part_by_part():
    text = "How much is express shipping, and how long do I have to return something?"
    lookup = retrieval_queries([{"role": "user", "content": text}])
    assert lookup.queries == [text, "How much is express shipping,", "how long do I have to return something?"]
    assert lookup.parts_from == 1
    angry = "This is ridiculous. My tracking has not moved for a week! What are you going to do about it?"
    assert retrieval_queries([{"role": "user", "content": angry}]).queries[1:] == [
        "This is ridiculous.", "My tracking has not moved for a week!", "What are you going to do about it?"]
