"""The widget when the inference worker dies after the bot started answering: the customer is told and a
human is called (as when no worker is up), and the half reply is not stored as the bot's answer."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from store.inference.client import InferenceUnavailable, StreamEvent
from tests.chat.conftest import receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_worker_dying_mid_reply_hands_the_customer_to_a_human(widget, scripted_sentiment, monkeypatch):
    async def dies_mid_reply(request):
        yield StreamEvent("text", "Our ")
        raise InferenceUnavailable("The inference worker serving this request stopped.")

    monkeypatch.setattr("knowledge.replies.stream_generation", dies_mid_reply)
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where is my parcel?", "client_id": "u"})
    frames = await receive_until(socket, "status")
    frames += await receive_until(socket, "message") if not any(f["type"] == "message" for f in frames) else []
    assert {"type": "status", "status": "needs_human", "assignee": None} in frames
    assert "our assistant is unavailable" in [f["message"]["text"] for f in frames if f["type"] == "message"][-1]
    authors = await sync_to_async(lambda: list(Message.objects.values_list("author", "text")))()
    assert ("bot", "Our ") not in authors
    await socket.disconnect()
