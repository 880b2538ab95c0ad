"""Doorbells: a coalesced one rings at once, then at most once per window, never losing an alert."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from core.broadcast import notify_coalesced

WINDOW = 0.3


def merge(pending: dict, newer: dict) -> dict:
    return {**newer, "alert": pending["alert"] or newer["alert"]}


def ring(number: int, alert: bool = False) -> None:  # from sync code, as transaction.on_commit calls it
    notify_coalesced("bell-test", {"type": "bell", "n": number, "alert": alert}, merge, window=WINDOW)


async def test_a_burst_of_rings_becomes_one_now_and_one_at_the_end_of_the_window():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("bell-test", channel)

    await sync_to_async(ring)(1)
    assert (await asyncio.wait_for(layer.receive(channel), 1))["n"] == 1  # the first rings at once
    for number, alert in ((2, True), (3, False), (4, False)):
        await sync_to_async(ring)(number, alert)
    folded = await asyncio.wait_for(layer.receive(channel), 2)
    assert folded["n"] == 4 and folded["alert"] is True  # the newest, and the alert of the second
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), WINDOW * 2)  # three rings, one send

    await asyncio.sleep(WINDOW)
    started = asyncio.get_running_loop().time()
    await sync_to_async(ring)(5)  # a quiet window later: at once again
    assert (await asyncio.wait_for(layer.receive(channel), 1))["n"] == 5
    assert asyncio.get_running_loop().time() - started < WINDOW
    await layer.group_discard("bell-test", channel)


async def test_sync_code_does_not_wait_for_its_sends_and_they_go_out_in_order(monkeypatch):
    import random

    from core import broadcast

    release = asyncio.Event()
    sent: list[int] = []

    async def slow_send(group: str, message: dict) -> None:  # Redis under load, each send a different delay
        await release.wait()
        await asyncio.sleep(random.uniform(0, 0.01))
        sent.append(message["n"])

    monkeypatch.setattr(broadcast, "_group_send", slow_send)

    def ring_twenty() -> None:  # as transaction.on_commit calls it, on Channels' database thread
        for number in range(20):
            broadcast.notify("order-test", {"type": "bell", "n": number})

    # Returns although no send can finish yet: the database thread is not held up by Redis.
    await asyncio.wait_for(sync_to_async(ring_twenty)(), 2)
    assert sent == []
    broadcast.notify("order-test", {"type": "bell", "n": 20})  # from the loop itself: same queue, after them
    release.set()
    for _ in range(200):
        if len(sent) == 21:
            break
        await asyncio.sleep(0.01)
    assert sent == list(range(21))


async def test_a_send_that_never_finishes_does_not_hold_the_ones_after_it(monkeypatch, caplog):
    from core import broadcast

    never = asyncio.Event()
    sent: list[int] = []

    async def send(group: str, message: dict) -> None:
        if message["n"] == 0:
            await never.wait()  # a Redis that hangs instead of refusing
        sent.append(message["n"])

    monkeypatch.setattr(broadcast, "_group_send", send)
    monkeypatch.setattr(broadcast, "SEND_TIMEOUT", 0.05)
    for number in range(3):
        broadcast.notify("stall-test", {"type": "bell", "n": number})
    for _ in range(300):
        if sent == [1, 2]:
            break
        await asyncio.sleep(0.01)
    assert sent == [1, 2]
    assert "could not notify group stall-test: no answer in 0.05 s" in caplog.text
