"""A grounded reply may state only specifics its passages (or the customer) hold, however they are written."""

import pytest

from knowledge.faithfulness import Support, check, specifics, split_complete

PASSAGES = [
    "Standard shipping is free on orders over $50; otherwise it costs $4.95. Express shipping costs $12.95.",
    "Standard shipping takes 3–5 business days. Express shipping takes 1–2 business days.",
    "Orders placed before 2 pm ET ship the same business day.",
    "Phone 1-800-555-0199, email help@acme-shoes.example. Chat: Monday–Friday 8 am–8 pm ET.",
    "Our wide-fit line is called Acme Roomy. Pay in 4 with Klarna on orders over $35. See https://acme-shoes.example/help",
    "You can return shoes within 30 days. Members get 10% off.",
]
SUPPORT = Support.of(PASSAGES)


@pytest.mark.parametrize("reply", [
    "Express shipping costs $12.95.",
    "Express costs 12.95 dollars.",
    "It takes three to five business days.",
    "Standard delivery is 3 to 5 business days, express 1-2.",
    "Order before 2:00 p.m. and it ships today.",
    "Order before 14:00 ET.",
    "Call 1 (800) 555-0199 or write to help@acme-shoes.example.",
    "Our Acme Roomy line fits wide feet.",
    "You can pay with Klarna in four instalments over $35.",
    "You have thirty days to return them, and members get 10 percent off.",
    "Details at https://acme-shoes.example/help.",
    "Sure! I can help with that.",
])
def test_it_accepts_replies_whose_specifics_the_passages_hold(reply):
    verdict = check(reply, SUPPORT)
    assert verdict.ok, verdict.describe()


@pytest.mark.parametrize(("reply", "unsupported"), [
    ("Express shipping costs $15.95.", "$15.95"),
    ("Express costs 13 dollars.", "13 dollars"),
    ("Returns are accepted within 60 days.", "60"),
    ("We offer a 15% student discount.", "15%"),
    ("Orders before 4 pm ship today.", "4 pm"),
    ("Call us on 1-800-555-0100.", "1-800-555-0100"),
    ("Email support@acme-shoes.example.", "support@acme-shoes.example"),
    ("Pay later with Afterpay.", "Afterpay"),
    ("See www.acme-deals.com for details.", "www.acme-deals.com"),
    ("Acme was founded in 1998.", "1998"),
])
def test_it_rejects_a_reply_with_a_specific_the_passages_do_not_hold(reply, unsupported):
    verdict = check(reply, SUPPORT)
    assert not verdict.ok
    assert unsupported in [s.text for s in verdict.unsupported]


def test_the_customer_s_own_words_count_as_support():
    support = Support.of([*PASSAGES, "I ordered size 11 boots on March 3 for my son Tom."])
    assert check("Your size 11 boots for Tom ship in 3–5 business days.", support).ok


def test_each_character_counts_once():
    kinds = [s.kind for s in specifics("Call 1-800-555-0199 about the $12.95 charge at 2 pm.")]
    assert kinds == ["phone", "money", "time"]  # the phone's digits are not also numbers


def test_it_splits_finished_sentences_from_the_unfinished_rest():
    done, rest = split_complete("Express costs $12.95. It takes 1–2 business days, e.g. for")
    assert done == ["Express costs $12.95. "]
    assert rest == "It takes 1–2 business days, e.g. for"
    done, rest = split_complete("Sure!\nWe ship to Canada. ")
    assert done == ["Sure!\n", "We ship to Canada. "] and rest == ""
