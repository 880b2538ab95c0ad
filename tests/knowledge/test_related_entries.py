"""Under an answer, the bot offers the next closest entries as questions to ask with one tap."""

from knowledge.policy import RELATED_SHOWN, Candidate, decide, related_entries
from knowledge.replies import ReplyResult
from store.api.protocol import Outcome


def entry(pk: int, confidence: float, heading: str, question: str = "") -> Candidate:
    return Candidate(pk, 1, f"Shipping › {heading}", f"About {heading}.", question=question, confidence=confidence)


COST = entry(1, 0.9, "How much does shipping cost?")
TIME = entry(2, 0.7, "How long does delivery take?")
WHERE = entry(3, 0.55, "Where do you ship?")
RETURNS = entry(4, 0.52, "What is your return policy?")
FAR = entry(5, 0.3, "Do gift cards expire?")


def test_an_answer_offers_the_next_closest_entries_down_to_the_not_sure_band():
    decision = decide([COST, TIME, WHERE, RETURNS, FAR], threshold=0.6)
    assert [p.passage_id for p in decision.passages] == [1] and len(decision.related) == RELATED_SHOWN
    assert [p.passage_id for p in decision.related] == [2, 3]
    assert [p.passage_id for p in decide([COST, FAR], threshold=0.6).related] == []  # 0.3 < 0.6 - band
    assert [p.passage_id for p in decide([COST, TIME, WHERE], threshold=0.7).related] == [2]  # 0.55 < 0.7 - band


def test_an_entry_already_quoted_or_asked_twice_is_not_offered():
    second_part = entry(6, 0.9, "How much does shipping cost?")  # the same entry cut into two passages
    related = related_entries([COST, second_part, TIME, WHERE], [COST], threshold=0.6)
    assert [p.passage_id for p in related] == [2, 3]
    both = decide([COST, entry(7, 0.85, "How long does delivery take?"), TIME, WHERE], threshold=0.6)
    assert [p.passage_id for p in both.passages] == [1, 7] and [p.passage_id for p in both.related] == [3]


def test_not_knowing_or_not_being_sure_offers_nothing_else():
    assert decide([TIME, WHERE], threshold=0.8).related == []  # "not sure": the closest entry only
    assert decide([FAR], threshold=0.6).related == []  # "I don't know"
    priced = decide([entry(8, 0.9, "Where do you ship?")], threshold=0.6, message="How much is shipping?")
    assert not priced.answer and priced.related == []


def test_a_qa_entry_is_offered_as_its_question_and_the_api_carries_it():
    qa = entry(9, 0.7, "Q&A", question="Can I pay with PayPal?")
    decision = decide([COST, qa], threshold=0.6)
    result = ReplyResult("…", Outcome.QUOTED, passages=decision.passages, related=decision.related)
    assert result.grounding()["related"] == [{"passage_id": 9, "title": "Shipping › Q&A",
                                              "question": "Can I pay with PayPal?"}]
    assert "related" not in ReplyResult("…", Outcome.DID_NOT_KNOW).grounding()
    assert result.record()["related"] == result.grounding()["related"]  # kept with the stored message
