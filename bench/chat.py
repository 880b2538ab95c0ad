"""Chat transport and sentiment throughput on the real stack (loopback only, bounded in time).

Prints one JSON line:
- 500 idle widget connections + 50 active customers sending messages on one Daphne process, bot replies
  off (the conversations are with an agent) to isolate the transport: message -> stored -> acknowledged
  latency p50/p99, messages sent vs stored (loss must be 0), web process RSS;
- sentiment: customer messages scored per second end to end (socket -> stored -> engine -> stored label)
  vs direct batched calls of the same tuned classifier in this process (target >= 0.8x), and vs direct
  calls split by length as the engine splits them (what the transport costs on top of the model).
Run: .venv/bin/python -m bench.chat
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve import direct_sentiment, sentiment_texts, train_sentiment
from bench.stack import Stack, rss_mb, setup_django, stack_pids, temporary_data_dir

IDLE, ACTIVE, MESSAGES_EACH = 500, 50, 20
# 960 messages (~10 s end to end): with 320 the run lasted ~3 s, and the last batch's wait for its
# labels (up to two 64-text forwards in flight) was a fifth of it, measuring the ramp, not the rate.
SENTIMENT_CUSTOMERS, SENTIMENT_EACH = 20, 48
TIME_LIMIT = 300


def make_world():
    from accounts import people
    from chat.conversations import current_conversation
    from chat.identity import open_visitor, sign_socket_token
    from chat.models import ConversationStatus
    from chat.widgets import create_widget
    from store import deploy
    from store.models import FoundationModel

    user = people.create_user("agent@bench.example", "a-long-bench-passphrase")
    organization = people.create_organization("Bench chat", user)
    bot = deploy.create_or_update(organization, "bench-bot", deploy.ModelChoice(
        base=FoundationModel.objects.get(slug="smollm2-135m-instruct")))
    widget = create_widget(organization, bot, None, ["http://localhost:9"])

    def visitor_token(assigned: bool) -> tuple[str, int]:
        visitor = open_visitor(widget)
        conversation = current_conversation(visitor, create=True)
        if assigned:  # an agent holds the conversation: the bot stays quiet
            conversation.status, conversation.assignee = ConversationStatus.ASSIGNED, user
            conversation.save(update_fields=["status", "assignee"])
        return sign_socket_token(widget, visitor), conversation.pk

    return organization, widget, visitor_token


async def open_socket(url: str, token: str):
    import websockets

    host = url.removeprefix("http://")
    return await websockets.connect(f"ws://{host}/ws/chat/widget/?token={token}", origin=url, max_queue=None,
                                    open_timeout=60, ping_interval=None)


async def customer(url: str, token: str, count: int, latencies: list[float], acked: list[int], tag: str) -> None:
    socket = await open_socket(url, token)
    await socket.recv()  # hello
    for index in range(count):
        client_id = f"{tag}-{index}"
        started = time.perf_counter()
        await socket.send(json.dumps({"type": "message", "text": f"Message {index} from {tag}: where is my order?",
                                      "client_id": client_id}))
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "ack" and frame["client_id"] == client_id:
                latencies.append(time.perf_counter() - started)
                acked.append(frame["seq"])
                break
            if frame["type"] == "error":
                raise RuntimeError(frame)
    await socket.close()


async def transport(url: str, idle_tokens: list[str], active_tokens: list[str]) -> dict:
    idle = []
    for start in range(0, len(idle_tokens), 50):  # open in waves: one Daphne accepts them all
        idle += await asyncio.gather(*(open_socket(url, token) for token in idle_tokens[start:start + 50]))
    latencies: list[float] = []
    acked: list[int] = []
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(customer(url, token, MESSAGES_EACH, latencies, acked, f"c{i}")
                                            for i, token in enumerate(active_tokens))), TIME_LIMIT)
    wall = time.perf_counter() - started
    alive = sum(1 for socket in idle if socket.state.name == "OPEN")
    for socket in idle:
        await socket.close()
    ordered = sorted(latencies)
    return {"sent": len(active_tokens) * MESSAGES_EACH, "acked": len(acked), "wall": wall, "idle_alive": alive,
            "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1)}


async def sentiment_run(url: str, tokens: list[str], texts: list[str]) -> tuple[int, float]:
    async def send_all(token: str, chunk: list[str]) -> None:
        socket = await open_socket(url, token)
        await socket.recv()
        for index, text in enumerate(chunk):
            await socket.send(json.dumps({"type": "message", "text": text, "client_id": f"{token[-8:]}-{index}"}))
            while json.loads(await socket.recv())["type"] != "ack":
                pass
        await socket.close()

    started = time.perf_counter()
    await asyncio.gather(*(send_all(token, texts[i::len(tokens)]) for i, token in enumerate(tokens)))
    return len(texts), started


def main() -> None:
    data_dir = temporary_data_dir("gptstore-bench-chat-")
    setup_django(data_dir)
    from chat.models import Message
    from chat.pipeline import RULES_TTL_SECONDS
    from store import deploy

    organization, widget, visitor_token = make_world()
    idle_tokens = [visitor_token(True)[0] for _ in range(IDLE)]
    active = [visitor_token(True) for _ in range(ACTIVE)]
    env = {"CHAT_VISITOR_MESSAGES_PER_MINUTE": "100000", "CHAT_IP_MESSAGES_PER_MINUTE": "1000000"}
    tuned = train_sentiment(organization)
    texts = sentiment_texts(SENTIMENT_CUSTOMERS * SENTIMENT_EACH)
    direct_rate = statistics.median(direct_sentiment(tuned, texts) for _ in range(2))
    # The engine splits each batch by length (less padding): this baseline does the same, so the ratio
    # to it is what the socket, database, Redis and Celery cost on top of the model.
    grouped_rate = statistics.median(direct_sentiment(tuned, texts, grouped=True) for _ in range(2))
    with Stack(data_dir, **env) as stack:
        stack.wait_for_worker()
        # honcho starts each process through a shell: the Python process is the big one.
        web_pid = max(stack_pids("daphne", data_dir), key=rss_mb)
        result = asyncio.run(transport(stack.url, idle_tokens, [token for token, _ in active]))
        stored = Message.objects.filter(conversation_id__in=[pk for _, pk in active]).count()
        web_rss = rss_mb(web_pid)

        # Sentiment end to end: now the widget has a sentiment deployment; fresh conversations (with the
        # bot off: an agent holds them) so only scoring runs after each message.
        moods = deploy.create_or_update(organization, "bench-moods", deploy.ModelChoice(tuned=tuned))
        widget.sentiment_deployment = moods
        widget.save(update_fields=["sentiment_deployment"])
        time.sleep(RULES_TTL_SECONDS + 0.5)  # edited in this process: the web process's cached rules expire
        def wait_until_scored(conversation_ids: list[int], count: int) -> int:
            deadline = time.monotonic() + TIME_LIMIT
            while True:
                scored = Message.objects.filter(conversation_id__in=conversation_ids).exclude(
                    sentiment_label="").count()
                if scored >= count or time.monotonic() > deadline:
                    return scored
                time.sleep(0.05)

        warm_token, warm_conversation = visitor_token(True)
        asyncio.run(sentiment_run(stack.url, [warm_token], texts[:8]))
        wait_until_scored([warm_conversation], 8)  # the worker has loaded the classifier: steady state from here
        tokens = [visitor_token(True) for _ in range(SENTIMENT_CUSTOMERS)]
        count, started = asyncio.run(sentiment_run(stack.url, [t for t, _ in tokens], texts))
        scored = wait_until_scored([pk for _, pk in tokens], count)
        e2e_rate = scored / (time.perf_counter() - started)
    print(json.dumps({
        "benchmark": "chat", "idle_connections": IDLE, "idle_still_open": result["idle_alive"],
        "active_customers": ACTIVE, "messages_sent": result["sent"], "messages_acked": result["acked"],
        "messages_stored": stored, "lost": result["sent"] - stored,
        "ack_latency_p50_ms": result["p50_ms"], "ack_latency_p99_ms": result["p99_ms"],
        "messages_per_s": round(result["sent"] / result["wall"], 1), "web_rss_mb": round(web_rss, 1),
        "sentiment_messages": count, "sentiment_scored": scored,
        "sentiment_e2e_per_s": round(e2e_rate, 1), "sentiment_direct_per_s": round(direct_rate, 1),
        "sentiment_ratio": round(e2e_rate / direct_rate, 3),
        "sentiment_direct_grouped_per_s": round(grouped_rate, 1),
        "sentiment_ratio_vs_grouped_direct": round(e2e_rate / grouped_rate, 3),
    }), flush=True)


if __name__ == "__main__":
    main()
