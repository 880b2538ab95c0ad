"""Every WebSocket route answers a bad frame with an `error` frame and stays open.

A seeded list of bad frames (binary, not JSON, not an object, missing or unknown type, wrong field types,
huge numbers, NaN, deep nesting, lone surrogates, control characters, oversize) goes to each route in
config/routing.py; after each one the route must answer an `error` frame, then a ping with a pong. A
failure names the seed and the frame, so it reproduces.
"""

from __future__ import annotations

import json
import random

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.conversations import current_conversation
from chat.identity import open_visitor
from core.consumers import MAX_FRAME_CHARS
from tests.chat.conftest import console_socket, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 20261201
RANDOM_MUTATIONS = 60
CONTROL_CHARACTERS = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

# Frames each route accepts; the fuzzer damages them. Wrong-field frames per route follow.
VALID = {
    "widget": ['{"type": "ping"}', '{"type": "resume", "last_seq": 0}', '{"type": "typing", "typing": true}',
               '{"type": "message", "text": "Where are my boots?", "client_id": "c1"}'],
    "console": ['{"type": "ping"}'],
    "console_conversation": ['{"type": "ping"}', '{"type": "typing", "typing": false}', '{"type": "read"}'],
    "live": ['{"type": "ping"}'],
}
WRONG_FIELDS = {
    "widget": [
        {"type": "message", "text": ["Where", "are", "my", "boots?"], "client_id": "c1"},
        {"type": "message", "text": 42, "client_id": "c1"},
        {"type": "message", "text": {"$gt": ""}, "client_id": "c1"},
        {"type": "message", "text": True},
        {"type": "message", "text": "hi", "client_id": 7},
        {"type": "message", "text": "hi", "client_id": ["c1"]},
        {"type": "message", "text": "   "},
        {"type": "message", "text": "x" * 2001},
        {"type": "resume", "last_seq": "12"},
        {"type": "resume", "last_seq": -1},
        {"type": "resume", "last_seq": 2**64},
        {"type": "resume", "last_seq": 1.5},
        {"type": "resume", "last_seq": True},
        {"type": "resume", "last_seq": None},
        {"type": "resume", "last_seq": [1]},
        {"type": "typing", "typing": "yes"},
        {"type": "typing", "typing": 1},
        {"type": "csat", "value": True},
        {"type": "csat", "value": 1.0},
        {"type": "csat", "value": "1"},
        {"type": "csat", "value": 2},
        {"type": "email", "email": 123},
        {"type": "email", "email": ["a@b.example"]},
        {"type": "email", "email": "not an address"},
    ],
    "console": [{"type": "typing", "typing": True}, {"type": "read"}],
    "console_conversation": [{"type": "typing", "typing": "yes"}, {"type": "typing", "typing": {"on": 1}}],
    "live": [],
}
FIXED: list[str | bytes] = [
    b"\x00\x01\x02binary", b'{"type": "ping"}', b"",  # binary frames, even one that holds valid JSON
    "", " ", "hello", "{", "}", "{'type': 'ping'}", '{"type": "ping"', '{"type": "ping"}}', "ping",
    "[]", '[{"type": "ping"}]', "42", "-0.5", '"ping"', "null", "true",
    "{}", '{"text": "hi"}', '{"type": 1}', '{"type": null}', '{"type": ["ping"]}', '{"type": {"ping": 1}}',
    '{"type": "hack"}', '{"type": "' + "x" * 5000 + '"}', '{"type": "PING"}', '{"type": "ping "}',
    '{"type": "resume", "last_seq": 1e400}', '{"type": "resume", "last_seq": -1e400}',
    '{"type": "resume", "last_seq": ' + "9" * 5000 + "}",
    '{"type": "resume", "last_seq": NaN}', '{"type": "resume", "last_seq": Infinity}',
    '{"type": "resume", "last_seq": -Infinity}', '{"type": "ping", "x": NaN}',
    '{"type": "message", "text": ' + "[" * 1000 + "]" * 1000 + "}", "[" * 100_000, "{" * 50_000,
    '{"type": "message", "text": "\\ud800"}', '{"type": "message", "text": "boots \\udfff"}',
    '{"type": "ping", "\\ud83d": 1}', '{"type": "message", "text": "\ud800"}',
    '{"type": "message", "text": "hi\\u0000"}', '{"type": "message", "text": "bell\\u0007"}',
    '{"type": "ping\\u0000"}', '{"type": "message", "text": "\x1b[31mred"}',
    '{"type": "message", "text": "' + "a" * MAX_FRAME_CHARS + '"}', " " * (MAX_FRAME_CHARS + 1),
]


def mutations(valid: list[str], rng: random.Random) -> list[str]:
    """Damage that always leaves a frame bad: a strict prefix of an object, a control character or a
    lone surrogate anywhere (inside a string both are refused, outside one the JSON is broken), or
    nesting past the limit."""
    frames = []
    for _ in range(RANDOM_MUTATIONS):
        frame = rng.choice(valid)
        kind = rng.randrange(4)
        if kind == 0:
            frames.append(frame[:rng.randrange(len(frame))])
        elif kind == 1:
            at = rng.randrange(len(frame) + 1)
            frames.append(frame[:at] + rng.choice(CONTROL_CHARACTERS) + frame[at:])
        elif kind == 2:
            at = rng.randrange(len(frame) + 1)
            frames.append(frame[:at] + rng.choice(SURROGATES) + frame[at:])
        else:
            depth = rng.randrange(65, 400)
            inner = json.loads(frame)
            frames.append(json.dumps({**inner, "extra": json.loads("[" * depth + "]" * depth)}))
    return frames


def bad_frames(route: str) -> list[str | bytes]:
    rng = random.Random(f"{SEED}-{route}")
    return [*FIXED, *(json.dumps(frame) for frame in WRONG_FIELDS[route]), *mutations(VALID[route], rng)]


async def assert_survives(socket: WebsocketCommunicator, route: str) -> None:
    for number, frame in enumerate(bad_frames(route)):
        where = f"{route} frame #{number} (seed {SEED}): {frame[:120]!r}"
        # send_input, not send_to: send_to refuses empty frames, which browsers can send.
        await socket.send_input({"type": "websocket.receive", **({"bytes": frame} if isinstance(frame, bytes)
                                                                 else {"text": frame})})
        answer = await socket.receive_json_from(timeout=5)
        assert answer["type"] == "error", where
        assert isinstance(answer["code"], str) and isinstance(answer["message"], str) and answer["message"], where
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from(timeout=5) == {"type": "pong"}, where
    assert await socket.receive_nothing(timeout=0.1)


async def test_the_widget_socket_survives_every_bad_frame(widget):
    socket, connected, *_ = await widget_socket(widget)
    assert connected
    assert (await socket.receive_json_from())["type"] == "hello"
    await assert_survives(socket, "widget")
    await socket.disconnect()


async def test_the_console_socket_survives_every_bad_frame(widget, alice):
    socket, connected, _ = await console_socket(alice.user)
    assert connected
    await assert_survives(socket, "console")
    await socket.disconnect()


async def test_the_conversation_console_socket_survives_every_bad_frame(widget, alice):
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    socket, connected, _ = await console_socket(alice.user, conversation.pk)
    assert connected
    await assert_survives(socket, "console_conversation")
    await socket.disconnect()


def live_update_sockets(alice, catalog) -> dict[str, dict]:
    """A route of config/routing.py -> the kwargs that open it as Alice, for every live-update doorbell."""
    from finetune.datasets import create_dataset
    from finetune.models import FineTuneJob
    from knowledge.sources import create_knowledge_base
    from tests.finetune.conftest import sentiment_csv

    dataset = create_dataset(alice.organization, sentiment_csv(), "support.csv").dataset
    assert dataset is not None
    job = FineTuneJob.objects.create(organization=alice.organization, base_model=catalog["all-minilm-l6-v2"],
                                     dataset=dataset, task="sentiment", method="full")
    knowledge_base = create_knowledge_base(alice.organization, "Help centre")
    return {"ws/finetune/jobs/": {}, "ws/finetune/jobs/<str:public_id>/": {"public_id": job.public_id},
            "ws/finetune/datasets/<str:public_id>/": {"public_id": dataset.public_id},
            "ws/knowledge/<int:knowledge_base_id>/": {"knowledge_base_id": knowledge_base.pk}}


async def test_every_live_update_socket_survives_every_bad_frame(alice, catalog):
    from config.routing import websocket_urlpatterns

    kwargs_by_route = await sync_to_async(live_update_sockets)(alice, catalog)
    chat_routes = {"ws/chat/widget/", "ws/chat/console/", "ws/chat/console/<int:conversation_id>/"}
    routes = {str(pattern.pattern): pattern for pattern in websocket_urlpatterns}
    assert set(routes) == chat_routes | set(kwargs_by_route), "a new WebSocket route needs its place in the fuzzer"
    for route, kwargs in kwargs_by_route.items():
        socket = WebsocketCommunicator(routes[route].callback, "/" + route)
        socket.scope["user"] = alice.user
        socket.scope["url_route"] = {"kwargs": kwargs}
        connected, code = await socket.connect()
        assert connected, (route, code)
        await assert_survives(socket, "live")
        await socket.disconnect()
