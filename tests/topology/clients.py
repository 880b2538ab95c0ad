"""Clients of the cluster speaking the real protocols over real sockets: a widget tab (as static/chat/frame.js
does it: resume after each connect, an outbox resent with the same client_id, reconnect on close), an
agent's console socket, /v1 calls and server-sent events. `source` picks the caller's loopback address
(127.0.0.2) so the proxy tests can tell the caller from nginx (127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

CSRF = "topologytopologytopologytopology"  # 32 characters: Django takes an unmasked secret as is


def request(url: str, method: str = "GET", body: dict | str | None = None, headers: dict | None = None,
            source: str | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout,
                                            source_address=(source, 0) if source else None)
    data = json.dumps(body) if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json"} if isinstance(body, dict) else {}
    connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=data,
                       headers=sent | (headers or {}))
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


def api(url: str, key: str, path: str, body: dict | None = None, **options) -> tuple[int, dict[str, str], bytes]:
    return request(url + path, "POST" if body is not None else "GET", body,
                   {"Authorization": f"Bearer {key}"}, **options)


def open_stream(url: str, key: str, body: dict, source: str | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60,
                                            source_address=(source, 0) if source else None)
    connection.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return connection.getresponse()


def data_events(body: bytes) -> list[str]:
    return [line.removeprefix("data: ") for line in body.decode().splitlines() if line.startswith("data: ")]


def frames_of(kind: str, **fields):
    """A condition: the frames hold one of `kind` whose fields (or message fields) match."""

    def condition(frames: list[dict]):
        for frame in frames:
            body = frame.get("message", frame) if kind == "message" else frame
            if frame["type"] == kind and all(body.get(key) == value for key, value in fields.items()):
                return frame
        return None

    return condition


def post_form(url: str, session_key: str, fields: dict[str, str]) -> int:
    """A signed-in user's form POST (CSRF cookie, header and Origin as a browser sends them)."""
    from urllib.parse import urlencode

    origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
    status, _, _ = request(url, "POST", urlencode(fields), {
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"sessionid={session_key}; csrftoken={CSRF}",
        "X-CSRFToken": CSRF, "Origin": origin, "Referer": origin + "/"})
    return status


class Socket:
    """A JSON WebSocket read by a thread: every frame is kept, tests wait on what they expect."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.changed = threading.Condition()
        self.connection: ClientConnection | None = None
        self.closed = threading.Event()

    def _open(self, url: str, origin: str, headers: dict | None = None, source: str | None = None) -> None:
        ws_url = url.replace("http://", "ws://", 1)
        self.connection = connect(ws_url, origin=origin, additional_headers=headers, proxy=None, open_timeout=15,
                                  legacy=True, **({"source_address": (source, 0)} if source else {}))
        self.closed.clear()
        threading.Thread(target=self._read, args=(self.connection,), daemon=True).start()

    def _read(self, connection: ClientConnection) -> None:
        try:
            for raw in connection:
                with self.changed:
                    self.frames.append(json.loads(raw))
                    self.on_frame(self.frames[-1])
                    self.changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            with self.changed:
                self.changed.notify_all()
            self.on_close(connection)

    def on_close(self, connection: ClientConnection) -> None:
        """Called once a connection has closed (by either side)."""

    def on_frame(self, frame: dict) -> None:
        """Called with the lock held, for every frame in order."""

    def send(self, frame: dict) -> None:
        assert self.connection is not None
        self.connection.send(json.dumps(frame))

    def wait_for(self, condition: Callable[[list[dict]], object], timeout: float = 30) -> object:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = condition(self.frames)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out; frames: {self.frames[-20:]}")
                self.changed.wait(min(remaining, 0.5))

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


class WidgetTab(Socket):
    """One browser tab of a visitor on the site at `url` (its iframe page's origin is that site)."""

    def __init__(self, url: str, widget_key: str, visitor_token: str = "", source: str | None = None,
                 reconnect: bool = False) -> None:
        super().__init__()
        self.url, self.widget_key, self.source, self.reconnect = url, widget_key, source, reconnect
        self.visitor_token = visitor_token
        self.seqs: set[int] = set()
        self.last_seq = 0
        self.duplicate_frames = 0  # message frames for a seq already shown (frame.js drops them)
        self.outbox: dict[str, str] = {}  # client_id -> text, until acknowledged
        self.acked: dict[int, dict] = {}  # seq -> the tab's own message, from its ack
        self.connects = 0
        self._stopping = False

    def open(self, timeout: float = 30) -> WidgetTab:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _, body = request(f"{self.url}/chat/widget/{self.widget_key}/session", "POST",
                                          {"visitor_token": self.visitor_token}, source=self.source)
                if status == 200:
                    session = json.loads(body)
                    self.visitor_token = session["visitor_token"]
                    self._open(f"{self.url}/ws/chat/widget/?token={session['token']}", self.url, source=self.source)
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the widget could not connect to {self.url}")
            time.sleep(0.3)
        self.connects += 1
        self._send_quietly({"type": "resume", "last_seq": self.last_seq})
        return self

    def on_close(self, connection: ClientConnection) -> None:
        if self.reconnect and not self._stopping and connection is self.connection:
            threading.Thread(target=self.open, kwargs={"timeout": 60}, daemon=True).start()

    def on_frame(self, frame: dict) -> None:
        if frame["type"] == "message":
            seq = frame["message"]["seq"]
            if seq in self.seqs:
                self.duplicate_frames += 1
            self.seqs.add(seq)
            self.last_seq = max(self.last_seq, seq)
        elif frame["type"] == "ack":  # the tab's own message, stored: shown with its seq, as frame.js does
            text = self.outbox.pop(frame["client_id"], None)
            if text is not None and isinstance(frame.get("seq"), int):
                self.acked[frame["seq"]] = {"seq": frame["seq"], "author": "customer", "text": text}
                self.last_seq = max(self.last_seq, frame["seq"])
        elif frame["type"] == "synced":
            for client_id, text in list(self.outbox.items()):  # unacknowledged: again, after the replay
                threading.Thread(target=self._send_quietly, args=({"type": "message", "text": text,
                                                                   "client_id": client_id},), daemon=True).start()

    def _send_quietly(self, frame: dict) -> None:
        with contextlib.suppress(ConnectionClosed):  # the next connection's replay sends it again
            self.send(frame)

    def say(self, text: str) -> str:
        client_id = uuid.uuid4().hex
        with self.changed:
            self.outbox[client_id] = text
        self._send_quietly({"type": "message", "text": text, "client_id": client_id})
        return client_id

    def messages(self, author: str | None = None) -> list[dict]:
        """Distinct messages shown (by seq), in order."""
        with self.changed:
            seen: dict[int, dict] = dict(self.acked)
            for frame in self.frames:
                if frame["type"] == "message":
                    seen.setdefault(frame["message"]["seq"], frame["message"])
        return [m for _, m in sorted(seen.items()) if author is None or m["author"] == author]

    def message_frames(self, author: str) -> int:
        with self.changed:
            return sum(1 for f in self.frames if f["type"] == "message" and f["message"]["author"] == author)

    def close(self) -> None:
        self._stopping = True
        super().close()


class ConsoleSocket(Socket):
    def __init__(self, url: str, session_key: str, conversation_id: int | None = None) -> None:
        super().__init__()
        path = f"/ws/chat/console/{conversation_id}/" if conversation_id else "/ws/chat/console/"
        self._open(url + path, url, headers={"Cookie": f"sessionid={session_key}"})
