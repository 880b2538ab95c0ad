"""Which passages answer, what the bot says when none does, and what a follow-up is looked up as."""

import pytest

from knowledge.models import AnswerPolicy
from knowledge.policy import (
    DONT_KNOW_HANDOFF,
    Candidate,
    asks_for,
    choice_options,
    decide,
    default_policy,
    dont_know_text,
    quote_text,
    retrieval_queries,
    small_talk,
    states,
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


def test_a_part_keeps_its_passage_when_two_entries_answer_the_other_part():
    # "What sizes do you carry for women, and how do I spend my points?": two loyalty entries, nearly as
    # confident as each other, answered the second part; the sizes entry (the first part's best) was dropped.
    found = [candidate(1, 0.98, query=3), candidate(2, 0.97, query=0), candidate(3, 0.95, query=2),
             candidate(4, 0.9, query=3)]
    assert [p.passage_id for p in decide(found, 0.6, parts_from=2).passages] == [1, 2, 3]
    assert [p.passage_id for p in decide(found, 0.6, parts_from=None).passages] == [1, 2]


@pytest.mark.parametrize("message, kind", [
    ("How much is the GlowTune motion sensor?", "price"),
    ("how much r flyers", "price"),
    ("how much is shipping on my order?", "price"),
    ("What does a boot-fitting appointment cost?", "price"),
    ("What's the late fee if my payment bounces?", "price"),
    ("When was Acme Shoes founded?", "year"),
    ("what year did you guys open?", "year"),
    ("What time does the truck come down my street?", "time"),
    ("How many free exchanges do I get?", "count"),
    ("whats the width in mm of your roomy shoes", "count"),
    ("What's the phone number for the lost property office?", "phone number"),
    ("Who is the CEO of Acme Shoes?", "person"),
    ("How long has GreenBin been around?", "year"),
    ("how long have u lot been trading", "year"),
    ("who owns solarbright", "person"),
    ("Who's the manager of the bookstore? I'd like to speak to them.", "person"),
    # Not asking for a specific: the answer is a how-to, a yes/no or an amount that is not a price.
    ("How do I check how much is left on my gift card?", None),
    ("how do I see how much is on my gift card", None),
    ("how much do I have in my account?", None),
    ("How much bigger should a new pot be?", None),
    ("How do I change the phone number on my account?", None),
    ("What is the order number on my receipt?", None),
    ("What time zone is your support team in?", None),
    ("Can I change how many bags I get?", None),
    ("Do you ship to Canada?", None),
    ("How long do I have to return shoes?", None),
    ("My dog got bitten at YOUR daycare. Who's paying for this?", None),
    ("How long has my order been processing?", None),
    ("I'm backpacking with my friend who's 19. Can we share a dorm?", None),
])
def test_it_knows_what_kind_of_specific_a_question_asks_for(message, kind):
    assert asks_for(message) == kind


@pytest.mark.parametrize("kind, text, stated", [
    ("price", "Express shipping costs $12.95.", True),
    ("price", "Returns are free.", True),
    ("price", "Members save 10% on every order.", True),
    ("price", "GlowTune bulbs come in warm and cool white.", False),
    ("year", "Founded in 1998 in Portland.", True),
    ("year", "Acme Shoes is an online shoe store.", False),
    ("time", "Orders placed before 2 pm ship the same day.", True),
    ("time", "Orders ship on business days.", False),
    ("count", "You get one free exchange per order.", True),
    ("count", "Exchanges are handled by our team.", False),
    ("phone number", "Call 1-800-555-0199.", True),
    ("phone number", "Call us during opening hours.", False),
    ("person", "Acme Shoes was founded by Ana Ruiz in 1998.", True),
    ("person", "Our owners, the Lee family, still run the shop.", True),
    ("person", "The warranty covers the original owner.", False),
    ("person", "Acme Shoes is an online shoe store.", False),
])
def test_it_knows_whether_a_passage_states_such_a_specific(kind, text, stated):
    assert states(kind, text) is stated


def test_a_question_for_a_price_is_not_answered_by_a_passage_without_one():
    about_the_product = candidate(1, 0.9, "GlowTune bulbs come in warm and cool white.")
    decision = decide([about_the_product], 0.5, message="How much is the GlowTune motion sensor?")
    assert not decision.answer and decision.unstated == "price" and decision.confidence == 0.9
    priced = candidate(2, 0.85, "The GlowTune motion sensor is $24.99.")
    decision = decide([about_the_product, priced], 0.5, message="How much is the GlowTune motion sensor?")
    assert decision.answer and [p.passage_id for p in decision.passages] == [1, 2] and not decision.unstated
    # Without the customer's words (or with a question that asks for no specific) the passage stands.
    assert decide([about_the_product], 0.5).answer
    assert decide([about_the_product], 0.5, message="Do GlowTune bulbs come in warm white?").answer


def test_the_founding_year_is_not_answered_by_the_introduction():
    introduction = candidate(1, 0.8, "Acme Shoes is an online shoe store. We have no physical stores.")
    assert decide([introduction], 0.5, message="When was Acme Shoes founded?").unstated == "year"


@pytest.mark.parametrize(("message", "options"), [
    ("Which courier delivers my order, UPS or FedEx?", ("UPS", "FedEx")),
    ("Is the hydrotherapy pool chlorine or salt water?", ("chlorine", "salt")),
    ("Do you sell phone chargers, or just laptops?", ("chargers", "laptops")),
    ("do u accept FHA or VA loans", ("FHA", "VA")),
    # Not a choice between things the question names.
    ("Are you even shipping my stuff or not??", ()),
    ("when does the trial start counting, when i order or when it arrives", ()),
    ("Do you ship to Canada?", ()),
    ("Can I return them in a week or two?", ()),
])
def test_it_knows_the_options_a_question_names(message, options):
    assert choice_options(message) == options


def test_a_choice_is_answered_only_by_a_passage_that_names_an_option():
    delivery = candidate(1, 0.9, "Orders arrive in 3–5 business days.")
    decision = decide([delivery], 0.5, message="Which courier delivers my order, UPS or FedEx?")
    assert not decision.answer and decision.unstated == "choice"
    courier = "Which courier delivers my order, UPS or FedEx?"
    assert decide([delivery], 0.95, message=courier).closest is None  # nor offered as "not sure"
    couriers = candidate(2, 0.8, "We ship every order with UPS Ground.")
    decision = decide([delivery, couriers], 0.5, message="Which courier delivers my order, UPS or FedEx?")
    assert decision.answer and [p.passage_id for p in decision.passages] == [1, 2]


def test_a_currency_asked_for_by_its_code_is_named_by_its_name():
    prices = candidate(1, 0.9, "Visa, Mastercard and PayPal. Prices are in US dollars.")
    assert decide([prices], 0.5, message="Are prices in CAD or USD?").answer
    assert decide([prices], 0.5, message="do you charge in usd or euros?").answer
    decision = decide([prices], 0.5, message="Are prices in CAD or EUR?")  # it names neither
    assert not decision.answer and decision.unstated == "choice"


def test_a_question_in_several_parts_is_not_checked_as_a_whole():
    # "How much is express, and do you ship to Canada?": the Canada passage answers one part.
    found = [candidate(1, 0.9, "We ship to the US and Canada.", query=2)]
    assert decide(found, 0.5, parts_from=1, message="How much is express, and do you ship to Canada?").answer


def test_below_the_threshold_it_does_not_guess():
    decision = decide([candidate(1, 0.39), candidate(2, 0.3)], threshold=0.5)
    assert not decision.answer and decision.passages == [] and decision.confidence == 0.39
    assert decision.closest is None  # further below than UNSURE_BAND: a plain "I don't know"
    assert not decide([], 0.5).answer and decide([], 0.5).closest is None


def test_just_below_the_threshold_it_is_not_sure_and_offers_the_closest_entry():
    from knowledge.policy import NOT_SURE_HANDOFF, NOT_SURE_OPENING, UNSURE_BAND, not_sure_text

    decision = decide([candidate(1, 0.3), candidate(2, 0.5 - UNSURE_BAND / 2)], threshold=0.5)
    assert not decision.answer and decision.passages == [] and decision.closest.passage_id == 2
    text = not_sure_text(decision.closest, handoff=True)
    assert text == f"{NOT_SURE_OPENING}\n\nTitle 2\nPassage 2.\n\n{NOT_SURE_HANDOFF}"
    assert not not_sure_text(decision.closest, handoff=False).endswith(NOT_SURE_HANDOFF)
    # Asked for a price, an entry that states none is not offered as the closest answer.
    assert decide([candidate(2, 0.45, "Returns are free within 30 days.")], 0.5,
                  message="How much is express shipping?").closest is not None  # "free" states a price
    assert decide([candidate(2, 0.45, "We ship to the US and Canada.")], 0.5,
                  message="How much is express shipping?").closest is None


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
                                  "bye", "ok", "great", "hiii", "thank you for your help!", "great, thank you 🙂"])
def test_small_talk_gets_a_friendly_reply_not_a_lookup(text):
    assert small_talk(text)


@pytest.mark.parametrize("text", ["ok thanks bye", "thanks, that’s all", "Thanks a lot, have a nice day!", "no thanks",
                                  "byeee", "good night", "see you later", "no", "Nope.", "no that's it",
                                  "nah I'm good"])
def test_a_goodbye_ends_the_chat_even_with_thanks_in_it(text):
    # "ok thanks bye" was looked up, and the bot answered "I don't know that one — shall I get someone?"
    assert small_talk(text) == "Thanks for chatting — have a great day!"


@pytest.mark.parametrize("text", ["hi, how much is express shipping?", "thanks but where is my order",
                                  "ok so can I return worn shoes?", "no refund yet?", "is that all?", "great service!",
                                  "thanks, is it free?", "hello, do you ship to canada",
                                  "can you help me with a return?", "I need help with my order", "is there a store?",
                                  "are there any discounts?", "Thanks for nothing."])
def test_a_question_is_never_small_talk(text):
    assert small_talk(text) is None


@pytest.mark.parametrize(("text", "reply"), [
    # Each was looked up and answered "I don't know that one — shall I get someone from the team?".
    ("I have a question", "I'm here to help — what would you like to know?"),
    ("can you help me?", "I'm here to help — what would you like to know?"),
    ("is anyone there?", "I'm here to help — what would you like to know?"),
    ("help pls", "I'm here to help — what would you like to know?"),
    ("hey, quick question", "Hello! What can I help you with?"),
    ("ok real quick question", "I'm here to help — what would you like to know?"),
    ("are you real?", "I'm the virtual assistant: I answer from our help centre, and I can get someone from the team "
                      "whenever you ask."),
    ("are you a bot?", "I'm the virtual assistant: I answer from our help centre, and I can get someone from the team "
                       "whenever you ask."),
    ("r u a robot", "I'm the virtual assistant: I answer from our help centre, and I can get someone from the team "
                    "whenever you ask."),
])
def test_a_customer_who_has_not_asked_yet_is_asked_what_they_need(text, reply):
    assert small_talk(text) == reply


def test_the_entry_a_follow_up_points_at_is_offered_as_not_sure_never_as_the_answer():
    pointed_at = Candidate(1, 1, "Shipping › Where do you ship?", "Duties are included.", confidence=0.2,
                           context_confidence=0.95)
    decision = decide([pointed_at, candidate(2, 0.3)], 0.6, message="are duties included?")
    assert not decision.answer and decision.closest is pointed_at and decision.shown == [pointed_at]
    # below the "not sure" band, or an entry that states no price to someone asking one: "I don't know"
    assert decide([Candidate(1, 1, "T", "Duties are included.", confidence=0.2, context_confidence=0.45)], 0.6,
                  message="are duties included?").closest is None
    no_price = Candidate(1, 1, "Shipping › Where do you ship?", "We ship to the US and Canada.", confidence=0.2,
                         context_confidence=0.95)
    assert decide([no_price], 0.6, message="how much is express to there?").closest is None
    # an entry the message itself matches confidently answers as before
    answered = decide([pointed_at, candidate(2, 0.8)], 0.6, message="are duties included?")
    assert answered.answer and [p.passage_id for p in answered.passages] == [2]


@pytest.mark.parametrize("text, continues", [("and express?", True), ("what about if my order is $30?", True),
                                             ("is it free?", False), ("are duties included?", False)])
def test_a_follow_up_that_starts_like_one_says_it_continues(text, continues):
    turns = [{"role": "user", "content": "How much is shipping?"}, {"role": "user", "content": text}]
    lookup = retrieval_queries(turns)
    assert lookup.follow_up == 1 and lookup.continues is continues and lookup.payload()["continues"] is continues
    assert retrieval_queries(turns[1:]).continues is False  # a first message continues nothing


def test_a_short_follow_up_is_looked_up_with_the_question_before_it():
    turns = [{"role": "user", "content": "How much is standard shipping?"},
             {"role": "assistant", "content": "It is $4.95."}, {"role": "user", "content": "and express?"}]
    lookup = retrieval_queries(turns)
    assert lookup.queries == ["and express?", "How much is standard shipping? and express?",
                              "How much is standard shipping?"]
    assert lookup.follow_up == 1
    assert lookup.parts_from is None


@pytest.mark.parametrize("text", ["is it free?", "how long?", "what if they don't fit?", "ok and for kids?",
                                  "can I park there overnight?", "Can he come up the chairlift with me too?",
                                  "I placed it yesterday afternoon, what are my options now?"])
def test_a_message_that_refers_back_is_a_follow_up(text):
    turns = [{"role": "user", "content": "Do you ship to Canada?"}, {"role": "user", "content": text}]
    assert retrieval_queries(turns).follow_up == 1


@pytest.mark.parametrize("text", [
    "Is there a discount for students?",  # "there" that only says something exists
    "Are there any stores in Chicago?",
    "Do you know if there is a fee on returns?",
    # refers back, but long enough to stand on its own
    "My daughter wants to know whether she can bring her own skates to the Saturday lesson",
])
def test_a_question_that_stands_on_its_own_is_not_a_follow_up(text):
    turns = [{"role": "user", "content": "Do you ship to Canada?"}, {"role": "user", "content": text}]
    assert retrieval_queries(turns).follow_up is None


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
