"""How the worker combines a turn's queries: a joined follow-up must add something to count."""

from knowledge.worker import _best_per_passage

# Queries: 0 the message, 1 the message joined to the one before, 2 the one before alone.
SHIPPING, DELIVERY, FOUNDED = 10, 11, 12


def test_a_joined_query_that_only_repeats_the_earlier_question_counts_for_nothing():
    hits = [[(FOUNDED, 0.06)], [(DELIVERY, 0.48), (SHIPPING, 0.40)], [(DELIVERY, 0.51), (SHIPPING, 0.63)]]
    assert _best_per_passage(hits, follow_up=1) == {FOUNDED: (0.06, 0)}


def test_a_joined_query_that_matches_better_than_the_earlier_question_counts():
    hits = [[(SHIPPING, 0.20)], [(SHIPPING, 0.70), (DELIVERY, 0.30)], [(SHIPPING, 0.55), (DELIVERY, 0.45)]]
    assert _best_per_passage(hits, follow_up=1) == {SHIPPING: (0.70, 1)}


def test_the_earlier_question_alone_never_finds_a_passage_by_itself():
    hits = [[(SHIPPING, 0.20)], [], [(DELIVERY, 0.90)]]
    assert DELIVERY not in _best_per_passage(hits, follow_up=1)


def test_without_a_follow_up_each_passage_takes_its_best_query():
    hits = [[(SHIPPING, 0.20), (SHIPPING, 0.35)], [(SHIPPING, 0.30), (DELIVERY, 0.50)]]
    assert _best_per_passage(hits, follow_up=None) == {SHIPPING: (0.35, 0), DELIVERY: (0.50, 1)}


def test_a_follow_up_index_out_of_range_is_ignored():
    hits = [[(SHIPPING, 0.20)], [(DELIVERY, 0.50)]]
    assert _best_per_passage(hits, follow_up=5) == {SHIPPING: (0.20, 0), DELIVERY: (0.50, 1)}
