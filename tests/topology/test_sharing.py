"""Several web processes and inference workers behave as one site: sockets on different Daphne processes
hear each other, one message gets one reply whichever tab sent it, a key's rate limit is one budget, and
both inference workers take requests."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from tests.topology.clients import ConsoleSocket, WidgetTab, api, frames_of, post_form

pytestmark = pytest.mark.topology


def agent_session(organization) -> tuple[object, str]:
    """An agent of `organization`, signed in: the session is in the shared database, valid on every web."""
    from accounts import people
    from accounts.models import Membership, Role

    agent = people.create_user("sam@topology-shoes.example", "agent-passphrase-123", "Sam")
    Membership.objects.create(user=agent, organization=organization, role=Role.AGENT)
    client = Client()
    client.force_login(agent)
    return agent, client.cookies["sessionid"].value


def test_a_customer_on_one_web_and_an_agent_on_the_other_see_each_other(shop, topo):
    from chat.models import Conversation

    web1, web2 = topo.web_urls
    _, session = agent_session(shop["organization"])
    listing = ConsoleSocket(web2, session)
    customer = WidgetTab(web1, shop["widget"].public_key).open()
    customer.wait_for(frames_of("hello"))
    customer.say("Where is my order?")
    customer.wait_for(frames_of("ack"))
    conversation = Conversation.objects.get(visitor__token=customer.visitor_token)
    # The console on web 2 is rung by the message web 1 stored.
    listing.wait_for(frames_of("changed", conversation=conversation.pk))

    page = ConsoleSocket(web2, session, conversation.pk)
    page.send({"type": "ping"})
    page.wait_for(frames_of("pong"))  # connected and in the conversation's groups
    customer.say("It was due on Monday")
    page.wait_for(frames_of("message", author="customer", text="It was due on Monday"))

    assert post_form(f"{web2}/console/{conversation.pk}/reply/", session,
                     {"text": "Hi, I'm Sam. Your parcel leaves today."}) in (200, 302)
    customer.wait_for(frames_of("message", author="agent", text="Hi, I'm Sam. Your parcel leaves today."))
    customer.wait_for(frames_of("status", status="assigned"))
    for socket in (customer, listing, page):
        socket.close()


def test_two_tabs_on_different_webs_get_exactly_one_reply_per_message(shop, topo):
    from chat.models import Author, Message

    web1, web2 = topo.web_urls
    first = WidgetTab(web1, shop["widget"].public_key).open()
    first.wait_for(frames_of("hello"))
    second = WidgetTab(web2, shop["widget"].public_key, visitor_token=first.visitor_token).open()
    second.wait_for(frames_of("hello"))
    # One message from each tab, then a last one: each reply reaches both tabs, and a second reply to
    # an earlier message would have arrived before the reply to the last one (one turn at a time).
    for count, (tab, text) in enumerate([(first, "Do you ship to Canada?"), (second, "And to Mexico?"),
                                         (first, "Thanks")], start=1):
        tab.say(text)
        for each in (first, second):
            each.wait_for(lambda frames, count=count, each=each: len(each.messages("bot")) >= count, timeout=60)
    stored = Message.objects.filter(conversation__visitor__token=first.visitor_token)
    assert stored.filter(author=Author.CUSTOMER).count() == 3
    assert stored.filter(author=Author.BOT).count() == 3
    for tab in (first, second):
        assert [m["author"] for m in tab.messages() if m["author"] in ("customer", "bot")] == ["customer", "bot"] * 3, \
            (tab.messages(), list(stored.values_list("seq", "public_seq", "author", "text")))
        # One frame per reply. (A tab that joins the conversation as it starts may get the first customer
        # message twice, from the replay and the broadcast: the protocol's clients drop a seq they have.)
        assert tab.message_frames("bot") == 3
        tab.close()


def test_one_key_has_one_rate_limit_across_web_processes(topo):
    from tests.factories import organization_with_key

    _, _, key = organization_with_key("Limited Shoes", requests_per_minute=6)
    web1, web2 = topo.web_urls
    statuses = [api(web1 if n % 2 == 0 else web2, key, "/v1/models")[0] for n in range(6)]
    assert statuses == [200] * 6
    # The budget is spent, whichever process is asked next.
    for web in (web1, web2):
        status, headers, body = api(web, key, "/v1/models")
        assert status == 429, body
        assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
        assert int(headers["retry-after"]) >= 1


def test_both_inference_workers_serve_replies(shop, topo):
    counts = {name: topo.tasks_served(name).get("store.serving.tasks.generate", 0) for name in topo.inference_names}
    body = {"model": "chatty-bot", "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}
    deadline = time.monotonic() + 120
    for n in range(16):  # the queue hands each request to the worker that has waited longest
        status, _, payload = api(topo.web_urls[n % 2], shop["key"], "/v1/chat/completions", body)
        assert status == 200, payload
        served = {name: topo.tasks_served(name).get("store.serving.tasks.generate", 0) - counts[name]
                  for name in topo.inference_names}
        if all(served.values()) or time.monotonic() > deadline:
            break
    assert all(served.values()), served
