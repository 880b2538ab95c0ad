"""Per-key limits live in Redis (the session's real redis-server), shared by every web process."""

import asyncio

from store.api_keys import create_api_key
from tests.factories import bearer


def test_it_answers_429_with_retry_after_past_the_request_limit(client, alice):
    _, key = create_api_key(alice.organization, "tight", requests_per_minute=2)
    assert [client.get("/v1/models", **bearer(key)).status_code for _ in range(2)] == [200, 200]
    response = client.get("/v1/models", **bearer(key))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_limits_are_per_key(client, alice):
    _, first = create_api_key(alice.organization, "a", requests_per_minute=1)
    _, second = create_api_key(alice.organization, "b", requests_per_minute=1)
    assert client.get("/v1/models", **bearer(first)).status_code == 200
    assert client.get("/v1/models", **bearer(first)).status_code == 429
    assert client.get("/v1/models", **bearer(second)).status_code == 200


def test_it_refuses_generation_once_the_token_budget_is_spent(client, alice, alice_deployment):
    from core import ratelimit

    api_key, key = create_api_key(alice.organization, "few tokens", tokens_per_minute=100)
    asyncio.run(ratelimit.charge_tokens(api_key.prefix, 100, 500))  # a long reply went over budget
    response = client.post("/v1/chat/completions", content_type="application/json", **bearer(key),
                           data={"model": "acme-support", "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "tokens"
    assert int(response["Retry-After"]) > 60


def test_taking_from_several_buckets_is_all_or_nothing():
    from core import ratelimit

    async def scenario():
        first = await ratelimit.take_all([("test:visitor", 5), ("test:ip", 1)])
        refused = await ratelimit.take_all([("test:visitor", 5), ("test:ip", 1)])
        # The visitor's bucket gave nothing to the refused call: 4 of its 5 units are left.
        visitor_left = [(await ratelimit.take("test:visitor", 5)).allowed for _ in range(5)]
        return first, refused, visitor_left

    first, refused, visitor_left = asyncio.run(scenario())
    assert first == (True, -1, 0)
    allowed, refused_by, retry_after = refused
    assert (allowed, refused_by) == (False, 1) and 1 <= retry_after <= 60
    assert visitor_left == [True, True, True, True, False]


def test_taking_from_a_thread_draws_on_the_same_buckets_all_or_nothing():
    """take_all_now (the chat widget's, on its database thread) and take_all share their buckets."""
    from core import ratelimit

    assert ratelimit.take_all_now([("test:tab", 3), ("test:address", 1)]) == (True, -1, 0)
    allowed, refused_by, retry_after = ratelimit.take_all_now([("test:tab", 3), ("test:address", 1)])
    assert (allowed, refused_by) == (False, 1) and 1 <= retry_after <= 60
    # 2 of the tab's 3 units are left (the refused call took none), whichever client asks.
    assert asyncio.run(ratelimit.take_all([("test:tab", 3)]))[0] is True
    assert ratelimit.take_all_now([("test:tab", 3)])[0] is True
    assert ratelimit.take_all_now([("test:tab", 3)])[0] is False
