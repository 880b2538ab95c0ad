"""How the worker combines a turn's queries: a joined follow-up must add something to count; where it does
not, the passage the conversation points at is kept as context (offered as "not sure", never answered)."""

from knowledge.worker import _best_per_passage

# Queries: 0 the message, 1 the message joined to the one before, 2 the one before alone.
SHIPPING, DELIVERY, FOUNDED = 10, 11, 12


def test_a_joined_query_that_only_repeats_the_earlier_question_counts_for_nothing():
    hits = [[(FOUNDED, 0.06)], [(DELIVERY, 0.48), (SHIPPING, 0.40)], [(DELIVERY, 0.51), (SHIPPING, 0.63)]]
    assert _best_per_passage(hits, follow_up=1) == ({FOUNDED: (0.06, 0)}, {})


def test_a_joined_query_that_matches_better_than_the_earlier_question_counts():
    hits = [[(SHIPPING, 0.20)], [(SHIPPING, 0.70), (DELIVERY, 0.30)], [(SHIPPING, 0.55), (DELIVERY, 0.45)]]
    assert _best_per_passage(hits, follow_up=1) == ({SHIPPING: (0.70, 1)}, {})


def test_the_earlier_question_alone_never_finds_a_passage_by_itself():
    hits = [[(SHIPPING, 0.20)], [], [(DELIVERY, 0.90)]]
    assert DELIVERY not in _best_per_passage(hits, follow_up=1)[0]


def test_without_a_follow_up_each_passage_takes_its_best_query():
    hits = [[(SHIPPING, 0.20), (SHIPPING, 0.35)], [(SHIPPING, 0.30), (DELIVERY, 0.50)]]
    assert _best_per_passage(hits, follow_up=None) == ({SHIPPING: (0.35, 0), DELIVERY: (0.50, 1)}, {})


def test_a_follow_up_index_out_of_range_is_ignored():
    hits = [[(SHIPPING, 0.20)], [(DELIVERY, 0.50)]]
    assert _best_per_passage(hits, follow_up=5) == ({SHIPPING: (0.20, 0), DELIVERY: (0.50, 1)}, {})


def test_the_passage_both_the_follow_up_and_the_conversation_point_at_is_kept_as_context():
    # "are duties included?" after "Do you ship to Canada?": alone it finds the shipping entry best, but
    # weakly; read with the question before, strongly, though not better than that question alone.
    hits = [[(SHIPPING, 0.22), (FOUNDED, 0.10)], [(SHIPPING, 0.80), (DELIVERY, 0.40)], [(SHIPPING, 0.90)]]
    best, context = _best_per_passage(hits, follow_up=1)
    assert best == {SHIPPING: (0.22, 0), FOUNDED: (0.10, 0), DELIVERY: (0.40, 1)}
    assert context == {SHIPPING: 0.80}


def test_no_context_when_the_follow_up_alone_finds_another_passage_best():
    # "when was it founded?" after a shipping question: the conversation points at shipping, the message does not.
    hits = [[(FOUNDED, 0.30), (SHIPPING, 0.10)], [(SHIPPING, 0.80)], [(SHIPPING, 0.90)]]
    assert _best_per_passage(hits, follow_up=1) == ({FOUNDED: (0.30, 0), SHIPPING: (0.10, 0)}, {})


def test_no_context_where_the_joined_query_already_counts():
    hits = [[(SHIPPING, 0.20)], [(SHIPPING, 0.70)], [(SHIPPING, 0.55)]]
    assert _best_per_passage(hits, follow_up=1) == ({SHIPPING: (0.70, 1)}, {})


def test_a_message_that_says_it_continues_keeps_the_joined_querys_best_passage_as_context():
    # "what about if my order is $30?" after "how much is shipping": alone it finds another passage best.
    hits = [[(FOUNDED, 0.30), (SHIPPING, 0.10)], [(SHIPPING, 0.80), (DELIVERY, 0.30)],
            [(SHIPPING, 0.90), (DELIVERY, 0.50)]]
    assert _best_per_passage(hits, follow_up=1, continues=True)[1] == {SHIPPING: 0.80}
    assert _best_per_passage(hits, follow_up=1, continues=False)[1] == {}
