"""The sentiment fold is one UPDATE the database computes: folds from several processes at once lose
none, and a message folded before (its turn ran again after a crash) is not counted twice."""

import threading

import pytest
from django.db import connection

from chat.conversations import append_message, current_conversation
from chat.handoff import rolling, sentiment_value
from chat.identity import open_visitor
from chat.models import Author
from chat.sentiment import record_sentiment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ANGRY = {"negative": 0.9, "neutral": 0.05, "positive": 0.05}


def test_concurrent_folds_from_separate_connections_lose_none(widget):
    conversation = current_conversation(open_visitor(widget), create=True)
    messages = [append_message(conversation, Author.CUSTOMER, f"complaint {i}")[0] for i in range(8)]
    start, errors = threading.Barrier(len(messages)), []

    def fold(message) -> None:
        try:
            start.wait()  # all at once, each on its own database connection (as two web processes)
            record_sentiment(message, "negative", 0.9, ANGRY)
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fold, args=(message,)) for message in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conversation.refresh_from_db()
    assert conversation.negative_streak == len(messages)
    expected = None
    for _ in messages:
        expected = rolling(expected, sentiment_value(ANGRY))
    assert conversation.sentiment_score == pytest.approx(expected)


def test_a_message_folded_before_is_not_folded_again(widget):
    conversation = current_conversation(open_visitor(widget), create=True)
    message, _ = append_message(conversation, Author.CUSTOMER, "this is awful")
    first = record_sentiment(message, "negative", 0.9, ANGRY)
    assert first is not None and first.negative_streak == 1
    assert first.sentiment_trend == pytest.approx(first.sentiment_score)  # from neutral (0)
    assert record_sentiment(message, "negative", 0.9, ANGRY) is None
    conversation.refresh_from_db()
    assert conversation.negative_streak == 1 and conversation.sentiment_score == pytest.approx(first.sentiment_score)


def test_a_positive_message_ends_the_streak_and_moves_the_trend_up(widget):
    conversation = current_conversation(open_visitor(widget), create=True)
    angry, _ = append_message(conversation, Author.CUSTOMER, "this is awful")
    happy, _ = append_message(conversation, Author.CUSTOMER, "oh thanks, found it")
    after_angry = record_sentiment(angry, "negative", 0.9, ANGRY)
    after_happy = record_sentiment(happy, "positive", 0.9, {"negative": 0.0, "neutral": 0.1, "positive": 0.9})
    assert after_angry is not None and after_happy is not None
    assert after_happy.negative_streak == 0
    assert after_happy.sentiment_score == pytest.approx(rolling(after_angry.sentiment_score, 0.9))
    assert after_happy.sentiment_trend == pytest.approx(after_happy.sentiment_score - after_angry.sentiment_score)
