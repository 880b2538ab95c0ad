"""The database unreachable while a socket handles a frame: an `error` frame, the socket stays open, and the
next frame after the database is back works (core/consumers.py; core/db_outage.py decides what an outage is)."""

from contextlib import contextmanager
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError
from django.db.backends.utils import CursorWrapper

from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, Conversation, Message
from tests.chat.conftest import console_socket, receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGES = [OperationalError("could not connect to server: Connection refused"),
           InterfaceError("connection already closed")]
UNAVAILABLE = {"type": "error", "code": "database_unavailable",
               "message": "The database is unavailable for a moment. Please retry in a few seconds."}


@contextmanager
def database_down(error: Exception):
    """Every query fails as psycopg fails when the server is gone. What connection.execute_wrapper does
    (tests/core/test_database_outage.py), for every thread's connection at once: the consumers run their
    database calls on more than one thread."""
    def refuse(*_args, **_kwargs):
        raise error

    with mock.patch.object(CursorWrapper, "_execute_with_wrappers", refuse):
        yield


def stored_customer_texts(visitor) -> list[str]:
    return list(Message.objects.filter(conversation__visitor=visitor, author=Author.CUSTOMER)
                .order_by("seq").values_list("text", flat=True))


@pytest.mark.parametrize("error", OUTAGES, ids=["operational", "interface"])
async def test_the_widget_answers_an_error_frame_and_works_again_when_the_database_is_back(
        widget, scripted_bot, scripted_sentiment, error):
    socket, connected, _, visitor = await widget_socket(widget)
    assert connected
    await receive_until(socket, "hello")

    with database_down(error):
        await socket.send_json_to({"type": "message", "text": "Where is my parcel?", "client_id": "c1"})
        assert await socket.receive_json_from(timeout=5) == {**UNAVAILABLE, "client_id": "c1"}
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from(timeout=5) == {"type": "pong"}  # still open

    await socket.send_json_to({"type": "message", "text": "Where is my parcel?", "client_id": "c1"})
    frames = await receive_until(socket, "ack")
    assert not [frame for frame in frames if frame["type"] == "error"]
    assert await sync_to_async(stored_customer_texts)(visitor) == ["Where is my parcel?"]
    await socket.disconnect()


def conversation_with_unread(widget) -> Conversation:
    conversation = current_conversation(open_visitor(widget), create=True)
    append_message(conversation, Author.CUSTOMER, "Hello?")
    Conversation.objects.filter(pk=conversation.pk).update(unread_for_agents=3)
    return conversation


def unread(conversation: Conversation) -> int:
    return Conversation.objects.get(pk=conversation.pk).unread_for_agents


@pytest.mark.parametrize("error", OUTAGES, ids=["operational", "interface"])
async def test_the_console_answers_an_error_frame_and_works_again_when_the_database_is_back(
        widget, alice, scripted_bot, scripted_sentiment, error):
    conversation = await sync_to_async(conversation_with_unread)(widget)
    socket, connected, _ = await console_socket(alice.user, conversation.pk)
    assert connected

    with database_down(error):
        await socket.send_json_to({"type": "read"})
        assert (await receive_until(socket, "error"))[-1] == UNAVAILABLE
    assert await sync_to_async(unread)(conversation) == 3

    await socket.send_json_to({"type": "read"})
    await socket.send_json_to({"type": "ping"})
    frames = await receive_until(socket, "pong")
    assert not [frame for frame in frames if frame["type"] == "error"]
    assert await sync_to_async(unread)(conversation) == 0
    await socket.disconnect()


async def test_other_errors_still_close_the_socket(widget, monkeypatch):
    """Only an outage is answered: a bug stays loud (the socket closes and the traceback is logged)."""
    from chat.consumers import WidgetConsumer

    async def broken(self, content):
        raise ValueError("a bug")

    monkeypatch.setattr(WidgetConsumer, "_ping", broken)
    socket, connected, *_ = await widget_socket(widget)
    assert connected
    await receive_until(socket, "hello")
    await socket.send_json_to({"type": "ping"})
    with pytest.raises(ValueError, match="a bug"):
        await socket.receive_output(timeout=5)
