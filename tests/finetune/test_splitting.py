from collections import Counter

import pytest

from finetune.splitting import check_ratios, near_duplicate_groups, split_rows


def rows_with_labels(n_per_label=40):
    return [{"text": f"{label} message number {i} about order {i * 7919 % 1000}", "label": label}
            for label in ("negative", "neutral", "positive") for i in range(n_per_label)]


def test_it_is_reproducible_with_the_same_seed():
    rows = rows_with_labels()
    assert split_rows(rows, seed=7) == split_rows(rows, seed=7)


def test_it_changes_with_the_seed():
    rows = rows_with_labels()
    assert split_rows(rows, seed=7)["test"] != split_rows(rows, seed=8)["test"]


def test_it_covers_every_row_exactly_once():
    rows = rows_with_labels()
    parts = split_rows(rows)
    everything = parts["train"] + parts["validation"] + parts["test"]
    assert sorted(everything) == list(range(len(rows)))


def test_it_stratifies_by_label():
    rows = rows_with_labels(50)
    parts = split_rows(rows, ratios=(0.6, 0.2, 0.2))
    for part, share in (("train", 30), ("validation", 10), ("test", 10)):
        counts = Counter(rows[i]["label"] for i in parts[part])
        assert all(abs(count - share) <= 2 for count in counts.values()), (part, counts)


def test_it_follows_adjusted_ratios():
    parts = split_rows(rows_with_labels(100), ratios=(0.5, 0.25, 0.25))
    assert abs(len(parts["train"]) - 150) <= 3 and abs(len(parts["test"]) - 75) <= 3


def test_it_keeps_near_duplicates_in_one_part():
    rows = rows_with_labels(30)
    twins = [{"text": "Where is my order?? It has been two weeks!", "label": "negative"},
             {"text": "where is my order it has been two weeks", "label": "negative"},
             {"text": "Where is my order? It has been two weeks!!!", "label": "negative"},
             {"text": "I absolutely love these running shoes, thank you Acme", "label": "positive"},
             {"text": "I absolutely love these running shoes, thank you Acme!!", "label": "positive"}]
    rows += twins
    for seed in range(10):
        parts = split_rows(rows, seed=seed)
        where = {i: part for part, indices in parts.items() for i in indices}
        first = len(rows) - 5
        assert where[first] == where[first + 1] == where[first + 2]
        assert where[first + 3] == where[first + 4]


def test_it_groups_exact_and_near_duplicates_only():
    groups = near_duplicate_groups(["Thanks so much!", "thanks so much", "Thanks so much!!! <3",
                                    "My refund never arrived", "Do you ship to Canada?"])
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[2], groups[3], groups[4]}) == 3


@pytest.mark.parametrize(("ratios", "message"), [
    ((0.8, 0.1), "give three ratios"), ((0.8, 0.3, 0.1), "add up to 1"), ((0, 0.5, 0.5), "train ratio")])
def test_it_rejects_bad_ratios(ratios, message):
    assert message in " ".join(check_ratios(ratios))


def pairs(n_passages=30):
    """Three differently worded questions per passage."""
    return [{"query": query, "passage": f"The answer about topic {p}: reference {p * 104729 % 10000}."}
            for p in range(n_passages)
            for query in (f"how long does topic {p} take, number {p * 7919 % 1000}",
                          f"what does reference {p * 104729 % 10000} say",
                          f"explain policy {p * 31 % 97} to me please")]


def test_it_keeps_questions_about_the_same_passage_in_one_part():
    rows = pairs()
    assert len(set(near_duplicate_groups([row["query"] for row in rows[:3]]))) == 3  # not twins by wording
    for seed in range(5):
        parts = split_rows(rows, seed=seed)
        where = {i: part for part, indices in parts.items() for i in indices}
        for first in range(0, len(rows), 3):
            assert where[first] == where[first + 1] == where[first + 2]
        assert all(parts[name] for name in ("train", "validation", "test"))


def test_it_keeps_near_duplicate_questions_together_across_passages():
    rows = pairs(n_passages=20)[::3]
    rows += [{"query": "Where is my order?? It has been two weeks!", "passage": "Orders ship in 2 days."},
             {"query": "where is my order it has been two weeks", "passage": "Track it from your email."}]
    for seed in range(5):
        where = {i: part for part, indices in split_rows(rows, seed=seed).items() for i in indices}
        assert where[len(rows) - 2] == where[len(rows) - 1]


def test_it_splits_a_passage_s_questions_when_keeping_them_together_would_empty_a_part():
    questions = ["Where is my parcel?", "Do you ship abroad?", "How much is delivery?", "Can I pick it up?",
                 "Is shipping free?", "When does my order leave?", "Which courier do you use?",
                 "Do you deliver Sundays?", "Can I change the address?", "How do I track it?"]
    rows = [{"query": question, "passage": "Everything about delivery."} for question in questions]
    parts = split_rows(rows)
    assert [len(parts[name]) for name in ("train", "validation", "test")] == [8, 1, 1]
