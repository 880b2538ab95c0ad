"""The widget's socket reads fields by their JSON type: no str() of a list stored, no unbounded sequence
numbers, and email frames drawn from the same rate limit as messages."""

import pytest
from asgiref.sync import sync_to_async

from chat.conversations import current_conversation
from chat.identity import open_visitor
from chat.models import Message
from tests.chat.conftest import receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def answer_to(socket, frame: dict, kinds=("ack", "error", "email_saved", "synced")) -> dict:
    await socket.send_json_to(frame)
    while True:
        answer = await socket.receive_json_from(timeout=5)
        if answer["type"] in kinds:
            return answer


@pytest.mark.parametrize("text", [["Where", "are", "my", "boots?"], 42, {"text": "hi"}, True])
async def test_it_refuses_a_text_that_is_not_a_string_and_stores_nothing(widget, text):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    answer = await answer_to(socket, {"type": "message", "text": text, "client_id": "c1"})
    assert answer == {"type": "error", "code": "bad_frame", "client_id": "c1", "message": "text must be a string."}
    assert await sync_to_async(Message.objects.count)() == 0
    assert await answer_to(socket, {"type": "ping"}, kinds=("pong",)) == {"type": "pong"}
    await socket.disconnect()


@pytest.mark.parametrize("raw", ['{"type": "resume", "last_seq": 1e400}', '{"type": "resume", "last_seq": 1e300}',
                                 '{"type": "resume", "last_seq": -3}', '{"type": "resume", "last_seq": "7"}'])
async def test_it_answers_a_sequence_number_out_of_bounds_with_an_error(widget, raw):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_to(text_data=raw)
    answer = await socket.receive_json_from(timeout=5)
    assert answer["type"] == "error" and answer["code"] == "bad_frame"
    assert "last_seq must be between" in answer["message"]
    assert (await answer_to(socket, {"type": "resume", "last_seq": 0}))["type"] == "synced"  # still open
    await socket.disconnect()


async def test_it_rate_limits_email_frames_like_messages(widget, settings):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 2
    visitor = await sync_to_async(open_visitor)(widget)
    await sync_to_async(current_conversation)(visitor, create=True)
    socket, *_ = await widget_socket(widget, visitor)
    await socket.receive_json_from()
    answers = [await answer_to(socket, {"type": "email", "email": f"alice{i}@shop.example"}) for i in range(3)]
    assert [a["type"] for a in answers] == ["email_saved", "email_saved", "error"]
    assert answers[-1]["code"] == "rate_limited" and answers[-1]["retry_after"] > 0
    # the same buckets: a message now is refused too
    refused = await answer_to(socket, {"type": "message", "text": "hello?", "client_id": "m1"})
    assert refused["code"] == "rate_limited" and refused["client_id"] == "m1"
    await socket.disconnect()


async def test_a_frame_that_is_not_an_object_gets_an_error_not_a_closed_socket(widget):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_to(bytes_data=b'{"type": "ping"}')
    assert (await receive_until(socket, "error"))[-1]["code"] == "bad_frame"
    await socket.send_to(text_data='"\\ud800"')
    assert (await receive_until(socket, "error"))[-1]["message"].startswith("Text contains a lone UTF-16 surrogate")
    assert await answer_to(socket, {"type": "ping"}, kinds=("pong",)) == {"type": "pong"}
    await socket.disconnect()
