"""Faults on the running cluster: an inference worker killed under a stream, Redis restarted during a
chat, PostgreSQL stopped for a few seconds. Each test leaves the whole cluster up again (and says how long
that took), whatever order the tests run in."""

from __future__ import annotations

import json
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from tests.topology.clients import WidgetTab, api, data_events, frames_of, open_stream, request

pytestmark = pytest.mark.topology

LONG_REPLY = {"model": "chatty-bot", "max_tokens": 2000, "messages": [{"role": "user", "content": "Talk forever"}]}
ATTEMPTS = 3  # the kill must land while the reply is being generated


def finished_in_full(chunk: dict) -> bool:
    """The stream's last chunk says all max_tokens were generated (the worker was done before the kill)."""
    return bool(chunk.get("choices")) and chunk["choices"][0].get("finish_reason") == "length"


def generates_since(topo, offset: int) -> list[str]:
    """The worker processes that took an inference request since `offset` in the cluster's log, in order
    (Celery logs each task it receives; the supervisor prefixes each line with the process name)."""
    return re.findall(r"^\S+ (inference\d+) +\| .*Task store\.serving\.tasks\.generate\[[^]]+\] received",
                      topo.log()[offset:], flags=re.MULTILINE)


def wait_for(condition, timeout: float, problem: str) -> float:
    """Seconds until `condition()` held."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, problem
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_killed_inference_worker_fails_its_stream_and_the_other_serves_the_next(shop, topo):
    for attempt in range(1, ATTEMPTS + 1):
        offset = len(topo.log())
        stream = open_stream(topo.web_urls[0], shop["key"], LONG_REPLY)
        assert stream.status == 200
        first = [stream.readline() for _ in range(4)]
        assert sum(line.startswith(b"data: {") for line in first) >= 2, first  # it is generating
        serving = generates_since(topo, offset)
        assert len(serving) == 1, serving
        (victim,) = serving
        (survivor,) = set(topo.inference_names) - {victim}

        offset = len(topo.log())
        pid = topo.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        # Sent at once: the supervisor restarts the victim after 1 s at the earliest, so the survivor takes it.
        second = open_stream(topo.web_urls[1], shop["key"], {**LONG_REPLY, "max_tokens": 5})
        events = data_events(b"".join(first) + stream.read())
        failed_after = time.monotonic() - killed
        assert events[-1] == "[DONE]", events[-3:]
        last = json.loads(events[-2])
        wait_for(lambda victim=victim: topo.answering([victim]) == {victim}, 120, f"{victim} did not come back")
        if "error" in last or not finished_in_full(last):
            break
        # The worker had already written the whole reply (a loaded machine delivers it late): no fault to see.
        second.read()
    assert last.get("error", {}).get("code") == "no_inference_worker", (victim, events[-3:])
    assert failed_after < 15  # the worker's heartbeat TTL, not the 120 s idle timeout

    again = data_events(second.read())
    assert again[-1] == "[DONE]" and all('"error"' not in event for event in again)
    assert generates_since(topo, offset) == [survivor]
    assert topo.pid(victim) != pid
    print(f"\nstream failed {failed_after:.1f} s after the kill (attempt {attempt}); {victim} back and answering")


def test_a_chat_survives_a_redis_restart(shop, topo, cluster_redis):
    from chat.models import Author, Message

    web1, web2 = topo.web_urls
    key = shop["widget"].public_key
    first = WidgetTab(web1, key, reconnect=True).open()
    second = WidgetTab(web2, key, visitor_token=first.visitor_token, reconnect=True).open()

    def bot_replies(count: int) -> None:
        for tab in (first, second):
            tab.wait_for(lambda frames, tab=tab: len(tab.messages("bot")) >= count, timeout=90)

    first.say("Before the restart")
    bot_replies(1)
    cluster_redis.stop()
    down = time.monotonic()
    during = first.say("While Redis is down")  # stays in the tab's outbox until the server acknowledges it
    # The server met the outage with it: the socket closed (the tab reconnects) or the message was refused.
    first.wait_for(lambda frames: first.closed.is_set() or frames_of("error", client_id=during)(frames), 20)
    cluster_redis.restart()
    second.say("After the restart")
    bot_replies(3)
    recovered_after = time.monotonic() - down

    stored = Message.objects.filter(conversation__visitor__token=first.visitor_token)
    customer = list(stored.filter(author=Author.CUSTOMER).values_list("text", flat=True))
    assert sorted(customer) == sorted(["Before the restart", "While Redis is down", "After the restart"])
    assert stored.filter(author=Author.BOT).count() == 3
    public = set(stored.exclude(public_seq=None).values_list("public_seq", flat=True))
    for tab in (first, second):  # nothing lost, nothing shown twice
        shown = tab.messages()
        assert {m["seq"] for m in shown} == public
        assert len([m for m in shown if m["author"] == "bot"]) == 3
        tab.close()
    print(f"\nchat whole again {recovered_after:.1f} s after Redis stopped; reconnects: "
          f"web1 tab {first.connects - 1}, web2 tab {second.connects - 1}; "
          f"duplicate frames dropped: {first.duplicate_frames + second.duplicate_frames}")
    topo.wait_until_up(120)


def test_a_database_outage_answers_503_and_the_site_recovers_by_itself(shop, topo, postgres_server):
    webs = {"web1": topo.web_urls[0], "web2": topo.web_urls[1], "nginx": topo.url}
    pids = {name: topo.pid(name) for name in webs}
    postgres_server.stop_server()
    stopped = time.monotonic()
    def answers_while_down(name: str, url: str) -> None:
        status, headers, body = request(url + "/")
        assert status == 503, (name, body[:300])
        assert headers["content-type"].startswith("text/html") and headers["retry-after"]
        assert b"Traceback" not in body and b"unavailable" in body
        status, headers, body = api(url, shop["key"], "/v1/models")
        assert status == 503, (name, body[:300])
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "database_unavailable"

    try:
        # At once: the three entrances are independent.
        with ThreadPoolExecutor(len(webs)) as pool:
            for outcome in [pool.submit(answers_while_down, name, url) for name, url in webs.items()]:
                outcome.result()
    finally:
        down_for = time.monotonic() - stopped
        postgres_server.start_server()
        # This thread's connection died with the server. So did those of the session's other threads:
        # scripts/test.sh runs the topology tests in a session of their own.
        connections.close_all()

    def all_serve() -> bool:
        return all(request(url + "/")[0] == 200 and api(url, shop["key"], "/v1/models")[0] == 200
                   for url in webs.values())

    recovered_after = wait_for(all_serve, 30, "the site did not recover after the database came back")
    assert {name: topo.pid(name) for name in webs} == pids  # by itself: nothing was restarted
    print(f"\ndatabase down {down_for:.1f} s; every web served again {recovered_after:.1f} s after it was back")
    topo.wait_until_up(120)
