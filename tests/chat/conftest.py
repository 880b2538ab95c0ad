"""Chat fixtures. The serving engine is the boundary of the chat app: unit tests of the socket
protocol replace the two calls into it (stream a reply, classify a text) with scripted ones; the
real engine, worker and models are exercised by the live and browser tests."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.identity import open_visitor, sign_socket_token
from chat.widgets import create_widget
from store import deploy
from store.inference.client import InferenceUnavailable, StreamEvent
from tests.factories import make_tuned

BOT_PIECES = ["Our ", "return ", "window ", "is 30 days."]


@pytest.fixture
def widget(alice, catalog):
    bot = deploy.create_or_update(alice.organization, "acme-support", deploy.ModelChoice(
        tuned=make_tuned(alice.organization, catalog["smollm2-135m-instruct"])))
    moods = deploy.create_or_update(alice.organization, "acme-sentiment", deploy.ModelChoice(
        tuned=make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment", method="full",
                         labels=["negative", "neutral", "positive"])))
    return create_widget(alice.organization, bot, moods, ["https://shop.alice.example"], title="Alice help")


@pytest.fixture
def scripted_bot(monkeypatch):
    """The bot streams BOT_PIECES; set `.unavailable = True` to simulate no inference worker."""

    class Bot:
        unavailable = False
        requests: list = []

        async def stream(self, request):
            self.requests.append(request)
            if self.unavailable:
                raise InferenceUnavailable("no worker")
            for piece in BOT_PIECES:
                yield StreamEvent("text", piece)
            yield StreamEvent("done", info={"text": "".join(BOT_PIECES), "finish_reason": "stop",
                                            "prompt_tokens": 12, "completion_tokens": 7})

    bot = Bot()
    bot.requests = []
    monkeypatch.setattr("knowledge.replies.stream_generation", bot.stream)
    return bot


NEGATIVE_WORDS = ("worst", "angry", "terrible", "useless", "furious", "awful")


@pytest.fixture
def scripted_sentiment(monkeypatch):
    async def classify(request):
        results = []
        for text in request.texts:
            lowered = text.lower()
            label = ("negative" if any(w in lowered for w in NEGATIVE_WORDS)
                     else "positive" if "thank" in lowered else "neutral")
            scores = {"negative": 0.05, "neutral": 0.05, "positive": 0.05, label: 0.9}
            results.append({"label": label, "score": 0.9, "scores": scores, "tokens": 5})
        return {"results": results, "prompt_tokens": 5 * len(results)}

    monkeypatch.setattr("chat.sentiment.classify", classify)


async def widget_socket(widget, visitor=None, origin=b"http://testserver", token=None):
    from config.asgi import application

    if visitor is None:
        visitor = await sync_to_async(open_visitor)(widget)
    token = token if token is not None else await sync_to_async(sign_socket_token)(widget, visitor)
    communicator = WebsocketCommunicator(application, f"/ws/chat/widget/?token={token}",
                                         headers=[(b"origin", origin), (b"host", b"testserver")])
    connected, code = await communicator.connect()
    return communicator, connected, code, visitor


async def console_socket(user, conversation_id=None):
    """An agent's console socket, signed in as `user` (the consumer behind the session middleware)."""
    from chat.consumers import ConsoleConsumer

    path = f"/ws/chat/console/{conversation_id}/" if conversation_id else "/ws/chat/console/"
    communicator = WebsocketCommunicator(ConsoleConsumer.as_asgi(), path)
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"conversation_id": conversation_id} if conversation_id else {}}
    connected, code = await communicator.connect()
    return communicator, connected, code


async def receive_until(communicator, kind, timeout=5):
    """Frames up to and including the first of type `kind`."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def send_message_code(communicator, client_id: str, text: str = "hi") -> str:
    """Send a customer message and return "ack", or the error code it was refused with."""
    await communicator.send_json_to({"type": "message", "text": text, "client_id": client_id})
    while True:
        frame = await communicator.receive_json_from(timeout=5)
        if frame["type"] in ("ack", "error"):
            return frame.get("code", "ack")


async def receive_bot_reply(communicator, timeout=5):
    """Frames up to and including the bot's stored reply."""
    frames = []
    while True:
        frames += await receive_until(communicator, "message", timeout)
        if frames[-1]["message"]["author"] == "bot":
            return frames


async def customer_writes(widget, text, client_id="c1"):
    """A new visitor's socket (its hello read) that has just sent `text`."""
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": text, "client_id": client_id})
    return socket
