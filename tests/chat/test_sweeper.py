"""A customer message stored by a web process that died before scoring and answering it is found by the
sweeper (Celery beat, in a worker) and handled exactly once."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from chat import sweeper, tasks, turns
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, Conversation, Message
from config.celery import app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def left_by_a_dead_process(widget, text: str = "Where is my order?", age: float = 60.0,
                           turn_owner: str = "", claimed_seconds_ago: float = 0.0) -> Message:
    """A customer message stored and never handled, as if its web process died right after the ack."""
    conversation = current_conversation(open_visitor(widget), create=True)
    assert conversation is not None
    message, _ = append_message(conversation, Author.CUSTOMER, text)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    if turn_owner:
        Conversation.objects.filter(pk=conversation.pk).update(
            turn_owner=turn_owner, turn_claimed_at=timezone.now() - timedelta(seconds=claimed_seconds_ago))
    return message


def _replies(message: Message) -> list[str]:
    return list(Message.objects.filter(conversation_id=message.conversation_id, author=Author.BOT)
                .values_list("text", flat=True))


async def test_it_scores_and_answers_a_message_left_behind_once(widget, scripted_bot, scripted_sentiment):
    message = await sync_to_async(left_by_a_dead_process)(widget, "This is the worst shop ever")
    assert await sweeper.sweep() == 1
    await sync_to_async(message.refresh_from_db)()
    assert message.sentiment_label == "negative" and message.handled_at is not None
    assert len(await sync_to_async(_replies)(message)) == 1
    conversation = await sync_to_async(Conversation.objects.get)(pk=message.conversation_id)
    assert conversation.sentiment_score is not None and conversation.negative_streak == 1
    assert conversation.turn_owner == ""

    assert await sweeper.sweep() == 0  # the second run finds nothing: nothing happens twice
    assert len(await sync_to_async(_replies)(message)) == 1
    assert len(scripted_bot.requests) == 1
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.negative_streak == 1


async def test_it_takes_over_a_stale_claim_and_leaves_a_live_one(widget, scripted_bot, scripted_sentiment):
    held = await sync_to_async(left_by_a_dead_process)(widget, "still being answered", turn_owner="web-1",
                                                       claimed_seconds_ago=1)
    dead = await sync_to_async(left_by_a_dead_process)(widget, "left behind", turn_owner="web-2",
                                                       claimed_seconds_ago=turns.STALE_SECONDS + 5)
    assert await sweeper.sweep() == 1
    assert len(await sync_to_async(_replies)(dead)) == 1
    assert await sync_to_async(_replies)(held) == []  # web 1 is alive and renewing: its message is its own
    await sync_to_async(held.refresh_from_db)()
    assert held.handled_at is None


async def test_it_leaves_a_message_just_stored_to_its_own_process(widget, scripted_bot, scripted_sentiment):
    young = await sync_to_async(left_by_a_dead_process)(widget, age=0)
    assert await sweeper.sweep() == 0
    assert await sync_to_async(_replies)(young) == []


async def test_a_message_a_dead_process_labelled_is_answered_without_scoring_it_again(
        widget, scripted_bot, monkeypatch):
    async def no_second_label(request):
        raise AssertionError("scored twice")

    monkeypatch.setattr("chat.sentiment.classify", no_second_label)
    message = await sync_to_async(left_by_a_dead_process)(widget)
    await sync_to_async(Message.objects.filter(pk=message.pk).update)(sentiment_label="neutral")
    assert await sweeper.sweep() == 1
    assert len(await sync_to_async(_replies)(message)) == 1


def test_beat_runs_the_sweep_in_an_inference_worker(widget, scripted_bot, scripted_sentiment):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == tasks.sweep_unhandled_messages.name)
    assert entry["schedule"] <= sweeper.GRACE_SECONDS
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "inference"
    message = left_by_a_dead_process(widget)
    assert tasks.sweep_unhandled_messages.delay().get() == 1  # eager here: the worker's code path
    assert len(_replies(message)) == 1
