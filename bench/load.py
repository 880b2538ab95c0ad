"""Load on the production topology, loopback only and bounded in time: two Daphne processes, two inference
workers, the training worker and beat (stack.cluster.Cluster) on a throwaway PostgreSQL and a redis-server over
TCP (stack.servers). The model is a tiny random Llama (tests/tiny_models.py, 2 layers, hidden size 32): the target
is the web tier; a real model would make every figure the inference workers' speed.

Prints one JSON line:
- /v1: `--requests` requests (default 10,000), CONCURRENCY at a time over keep-alive connections split evenly
  between the two web processes: GET /v1/models, POST /v1/chat/completions without and with streaming
  (max_tokens 8), and one in ten sent with a key allowed LIMITED_PER_MINUTE requests a minute, whose 429s are
  intended and counted apart (MIX); p50/p99 and counts per endpoint. Sent from a process of its own, so its parsing
  does not delay the chat clients' clocks.
- chat, at the same time: `--clients` widget sockets (default 500) open on both web processes, `--active` of them
  (default 50) customers at a time, each sending MESSAGES_EACH messages and waiting for each one's ack and the
  bot's streamed reply before the next; ack p50/p99, reply p50/p99, messages sent / acked / stored.
- errors: anything that did not succeed (must be 0): a status other than 200 (429 only on the limited key), a
  broken connection, an `error` frame, a reply that never came or came from "bot unavailable", a lost message.
- baseline, on the same cluster idle just before: /healthz latency and the ack latency of one active customer;
  the loaded figures' ratios to them.
Run: .venv/bin/python -m bench.load [--requests 10000] [--clients 500] [--active 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONCURRENCY = 32
MAX_TOKENS = 8
LIMITED_PER_MINUTE = 10
MESSAGES_EACH = 3
BASELINE_MESSAGES, BASELINE_HEALTHZ = 20, 200
REPLY_TIMEOUT = 60.0
TIME_LIMIT = 420.0  # the load itself; the cluster's start and the world's setup come on top (~1-2 min)
# Of every 20 requests: 12 model lists, 3 completions, 3 streams, 2 on the limited key. Completions go through
# Celery to an inference worker: more of them would measure the workers, and 10,000 would not fit the time.
MIX = ["models"] * 12 + ["completion"] * 3 + ["stream"] * 3 + ["limited"] * 2
ENDPOINTS = {"models": "GET /v1/models", "completion": "POST /v1/chat/completions",
             "stream": "POST /v1/chat/completions (stream)", "limited": "GET /v1/models (limited key)"}
WIDGET_ORIGIN = "http://localhost:9"


def percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(seconds)
    return {"p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1)}


class Http:
    """A minimal HTTP/1.1 keep-alive client (the virtualenv has no async one): Content-Length and chunked bodies."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict | None = None, body: dict | None = None
                      ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}",
                 *(f"{name}: {value}" for name, value in (headers or {}).items())]
        if body is not None:
            lines.append("Content-Type: application/json")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        try:
            status = int((await self.reader.readline()).split()[1])
            fields = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                fields[name.strip().lower()] = value.strip().lower()
            if "content-length" in fields:
                payload = await self.reader.readexactly(int(fields["content-length"]))
            elif fields.get("transfer-encoding") == "chunked":
                parts = []
                while size := int((await self.reader.readline()).split(b";")[0], 16):
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readline()
                await self.reader.readline()  # the empty trailer
                payload = b"".join(parts)
            else:
                payload = await self.reader.read()
                fields["connection"] = "close"
        except BaseException:
            self.close()
            raise
        if fields.get("connection") == "close":
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(kind: str, index: int, keys: dict, model: str) -> tuple[str, str, dict, dict | None]:
    key = keys["limited" if kind == "limited" else "main"]
    headers = {"Authorization": f"Bearer {key}"}
    if kind in ("models", "limited"):
        return "GET", "/v1/models", headers, None
    return "POST", "/v1/chat/completions", headers, {
        "model": model, "max_tokens": MAX_TOKENS, "stream": kind == "stream",
        "messages": [{"role": "user", "content": f"Where is order {index}?"}]}


def _succeeded(kind: str, status: int, payload: bytes) -> bool:
    if status != 200:
        return False
    if kind == "stream":
        return payload.rstrip().endswith(b"data: [DONE]")
    return bool(json.loads(payload).get("choices" if kind == "completion" else "data"))


async def api_load(urls: list[str], count: int, keys: dict, model: str) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for index in range(count):
        queue.put_nowait((index, MIX[index % len(MIX)]))
    latencies: dict[str, list[float]] = {kind: [] for kind in ENDPOINTS}
    intended, errors, samples = 0, 0, list[str]()
    per_web = [0] * len(urls)

    async def client(number: int) -> None:
        nonlocal intended, errors
        web = number % len(urls)
        http = Http(urls[web])
        while not queue.empty():
            index, kind = queue.get_nowait()
            method, path, headers, body = _request(kind, index, keys, model)
            started = time.perf_counter()
            try:
                status, payload = await http.request(method, path, headers, body)
                ok = _succeeded(kind, status, payload)
            except Exception as error:  # a broken connection is an error like any other
                status, payload, ok = 0, repr(error).encode(), False
            per_web[web] += 1
            if ok:
                latencies[kind].append(time.perf_counter() - started)
            elif kind == "limited" and status == 429:
                intended += 1
            else:
                errors += 1
                if len(samples) < 5:
                    samples.append(f"{ENDPOINTS[kind]}: {status} {payload[:200]!r}")
        http.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(CONCURRENCY)))
    wall = time.perf_counter() - started
    return {"endpoints": {ENDPOINTS[kind]: {"ok": len(seconds), **percentiles(seconds)}
                          for kind, seconds in latencies.items()},
            "requests": count, "intended_429": intended, "errors": errors, "error_samples": samples,
            "per_web_process": per_web, "wall_s": round(wall, 1), "requests_per_s": round(count / wall, 1)}


def api_process(urls: list[str], count: int, keys: dict, model: str, results) -> None:
    results.put(asyncio.run(api_load(urls, count, keys, model)))


async def healthz(urls: list[str], count: int) -> dict:
    clients, seconds = [Http(url) for url in urls], []
    for index in range(count):
        started = time.perf_counter()
        status, _ = await clients[index % len(clients)].request("GET", "/healthz")
        if status == 200:
            seconds.append(time.perf_counter() - started)
    for client in clients:
        client.close()
    return {"ok": len(seconds), **percentiles(seconds)}


async def open_socket(url: str, token: str):
    import websockets
    from websockets.typing import Origin

    return await websockets.connect(f"ws://{url.removeprefix('http://')}/ws/chat/widget/?token={token}",
                                    origin=Origin(url), max_queue=None, open_timeout=60, ping_interval=None)


class Chat:
    """Customers on widget sockets; what they measured and what went wrong."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.acks: list[float] = []
        self.replies: list[float] = []
        self.sent = 0
        self.errors = 0
        self.samples: list[str] = []

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(what)

    async def customer(self, socket, number: int, count: int) -> None:
        for index in range(count):
            client_id = f"{self.tag}-{number}-{index}"
            started = time.perf_counter()
            await socket.send(json.dumps({"type": "message", "text": f"Where is my order {number}-{index}?",
                                          "client_id": client_id}))
            self.sent += 1
            try:
                await asyncio.wait_for(self._answer(socket, client_id, started), REPLY_TIMEOUT)
            except TimeoutError:
                self.error(f"{client_id}: no ack or reply within {REPLY_TIMEOUT} s")
                return

    async def _answer(self, socket, client_id: str, started: float) -> None:
        acked = False
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "ack" and frame.get("client_id") == client_id:
                self.acks.append(time.perf_counter() - started)
                acked = True
            elif frame["type"] == "error":
                self.error(f"{client_id}: {frame}")
                return
            elif frame["type"] == "message" and acked and frame["message"]["author"] in ("bot", "system"):
                if frame["message"]["author"] == "system":  # "our assistant is unavailable right now"
                    self.error(f"{client_id}: {frame['message']['text'][:80]}")
                else:
                    self.replies.append(time.perf_counter() - started)
                return


async def chat_load(urls: list[str], tokens: list[str], active: int, chat: Chat) -> dict:
    sockets = []
    for start in range(0, len(tokens), 50):  # in waves: each Daphne accepts them all
        sockets += await asyncio.gather(*(open_socket(urls[i % len(urls)], tokens[i])
                                          for i in range(start, min(start + 50, len(tokens)))))
    for socket in sockets:
        assert json.loads(await socket.recv())["type"] == "hello"
    slots = asyncio.Semaphore(active)

    async def take_turn(number: int) -> None:
        async with slots:
            await chat.customer(sockets[number], number, MESSAGES_EACH)

    started = time.perf_counter()
    await asyncio.gather(*(take_turn(number) for number in range(len(sockets))))
    wall = time.perf_counter() - started
    still_open = sum(1 for socket in sockets if socket.state.name == "OPEN")
    for socket in sockets:
        await socket.close()
    return {"clients": len(sockets), "still_open": still_open, "active": active, "wall_s": round(wall, 1)}


def make_world(data_dir: Path, clients: int) -> tuple[dict, str, list[str]]:
    from accounts import people
    from chat.identity import open_visitor, sign_socket_token
    from chat.widgets import create_widget
    from store import deploy
    from store.api_keys import create_api_key
    from store.catalog import import_model
    from tests.tiny_models import build_tiny_chat_model

    folder = build_tiny_chat_model(data_dir / "tiny-chat")
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 8192  # room for a conversation's history: 512 ran out in a few turns
    (folder / "config.json").write_text(json.dumps(config))
    base = import_model(str(folder), slug="tiny-chat", display_name="Tiny Chat")
    user = people.create_user("owner@load.example", "a-long-bench-passphrase")
    organization = people.create_organization("Load", user)
    bot = deploy.create_or_update(organization, "load-bot", deploy.ModelChoice(base=base),
                                  system_prompt="You are a shop's assistant.", temperature=0.0, max_tokens=24)
    widget = create_widget(organization, bot, None, [WIDGET_ORIGIN])
    keys = {"main": create_api_key(organization, "load", requests_per_minute=100_000)[1],
            "limited": create_api_key(organization, "limited", requests_per_minute=LIMITED_PER_MINUTE)[1]}
    tokens = [sign_socket_token(widget, open_visitor(widget)) for _ in range(clients + 1)]
    return keys, bot.slug, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--active", type=int, default=50)
    options = parser.parse_args()

    from bench.stack import setup_django, temporary_data_dir
    from stack.cluster import Cluster
    from stack.servers import TcpRedis, ThrowawayPostgres

    began = time.perf_counter()
    data_dir = temporary_data_dir("gptstore-bench-load-")
    postgres, redis = ThrowawayPostgres(), TcpRedis()
    cluster: Cluster | None = None
    try:
        os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = postgres.start(), redis.start()
        setup_django(data_dir)
        keys, model, tokens = make_world(data_dir, options.clients)
        cluster = Cluster(data_dir, postgres.url, redis.url, webs=2, inference_workers=2, proxy=False, extra_env={
            "CHAT_VISITOR_MESSAGES_PER_MINUTE": "100000", "CHAT_IP_MESSAGES_PER_MINUTE": "1000000",
            "LOG_LEVEL": "WARNING"}).start()
        urls = cluster.web_urls
        baseline_chat = Chat("base")
        asyncio.run(healthz(urls, 20))  # warm: connections, the model's first batches
        baseline_http = asyncio.run(healthz(urls, BASELINE_HEALTHZ))

        async def one_customer() -> None:
            socket = await open_socket(urls[0], tokens[-1])
            await socket.recv()
            await baseline_chat.customer(socket, 0, BASELINE_MESSAGES)
            await socket.close()

        asyncio.run(one_customer())

        results = multiprocessing.get_context("spawn").Queue()
        sender = multiprocessing.get_context("spawn").Process(
            target=api_process, args=(urls, options.requests, keys, model, results))
        chat = Chat("load")
        sender.start()
        chat_result = asyncio.run(asyncio.wait_for(chat_load(urls, tokens[:-1], options.active, chat), TIME_LIMIT))
        api = results.get(timeout=TIME_LIMIT)
        sender.join(30)

        from chat.models import Message

        stored = Message.objects.filter(author="customer", client_id__startswith="load-").count()
    finally:
        if cluster is not None:
            cluster.stop()
        redis.stop()
        postgres.stop()
    ack, base_ack = percentiles(chat.acks), percentiles(baseline_chat.acks)
    errors = api["errors"] + chat.errors + baseline_chat.errors + (chat.sent - stored)
    print(json.dumps({
        "benchmark": "load", "model": "tiny random Llama (tests/tiny_models.py: 2 layers, hidden 32)",
        "topology": "2 Daphne, 2 inference workers, training worker, beat; PostgreSQL; Redis over TCP; loopback",
        "api": api, "intended_429": api["intended_429"], "errors": errors,
        "chat": {**chat_result, "messages_sent": chat.sent, "messages_acked": len(chat.acks),
                 "messages_stored": stored, "lost": chat.sent - stored, "bot_replies": len(chat.replies),
                 "ack_p50_ms": ack["p50_ms"], "ack_p99_ms": ack["p99_ms"],
                 "reply_p50_ms": percentiles(chat.replies)["p50_ms"],
                 "reply_p99_ms": percentiles(chat.replies)["p99_ms"], "errors": chat.errors,
                 "error_samples": chat.samples + baseline_chat.samples},
        "baseline": {"healthz_p50_ms": baseline_http["p50_ms"], "healthz_p99_ms": baseline_http["p99_ms"],
                     "ack_1_active_p50_ms": base_ack["p50_ms"], "ack_1_active_p99_ms": base_ack["p99_ms"]},
        "ratios": {"ack_p99_vs_1_active_p99": round(ack["p99_ms"] / base_ack["p99_ms"], 2)
                   if ack["p99_ms"] and base_ack["p99_ms"] else None},
        "wall_s": round(time.perf_counter() - began, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
