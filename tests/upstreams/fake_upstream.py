"""A real OpenAI-compatible HTTP server on loopback whose behaviour the test picks by the `model` it is asked for:
a proper stream (with or without `usage`), a plain JSON answer, a 429, a 500, malformed JSON, a hang, a trickle
that never ends. It records what it received (path, headers, body)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECES = ["Hello", " from", " upstream."]
USAGE = {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class FakeUpstream:
    def __init__(self) -> None:
        self.received: list[dict] = []
        self.release = threading.Event()  # set at shutdown: frees hanging handlers
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                upstream.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                getattr(self, "mode_" + body["model"].replace("-", "_"))()

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

            def _event(self, payload: dict | str) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()

            def _stream(self, usage: bool) -> None:
                self._start_stream()
                self._event(_chunk({"role": "assistant", "content": ""}))
                for piece in PIECES:
                    self._event(_chunk({"content": piece}))
                self._event(_chunk({}, "stop"))
                if usage:
                    self._event({**_chunk({}), "choices": [], "usage": USAGE})
                self._event("[DONE]")

            def mode_streams(self) -> None:
                self._stream(usage=True)

            def mode_streams_without_usage(self) -> None:
                self._stream(usage=False)

            def mode_answers_json(self) -> None:
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Plain JSON."},
                                                "finish_reason": "length"}], "usage": USAGE}).encode()
                self._plain(200, body)

            def _plain(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def mode_rate_limited(self) -> None:
                self._plain(429, json.dumps({"error": {"message": "Slow down, please", "type": "requests"}}).encode(),
                            {"Retry-After": "7"})

            def mode_fails(self) -> None:
                self._plain(500, b'{"error": {"message": "the GPU caught fire"}}')

            def mode_refuses_the_key(self) -> None:
                self._plain(401, b'{"error": {"message": "Incorrect API key provided"}}')

            def mode_malformed(self) -> None:
                self._start_stream()
                self._event(_chunk({"content": "Half"}))
                self.wfile.write(b"data: {\"choices\": [ not json\n\n")
                self.wfile.flush()

            def mode_nested(self) -> None:
                self._start_stream()
                self.wfile.write(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")

            def mode_lies_about_usage(self) -> None:
                self._start_stream()
                self._event(_chunk({"content": "Hi."}, "stop"))
                self._event({**_chunk({}), "choices": [], "usage": {"prompt_tokens": -5, "completion_tokens": True}})
                self._event("[DONE]")

            def mode_wrong_shape(self) -> None:
                self._start_stream()
                self._event({"hello": "world"})

            def mode_hangs(self) -> None:
                upstream.release.wait(30)

            def mode_trickles(self) -> None:
                self._start_stream()
                while not upstream.release.wait(0.05):
                    try:
                        self._event(_chunk({"content": "."}))
                    except OSError:  # the client gave up
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
