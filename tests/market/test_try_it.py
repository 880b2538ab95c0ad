"""Public try-it: signed-in people try a public listing; capped tokens, billed to nobody, rate limited per
user and per listing (Redis buckets shared by all web processes)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.bounds import TRY_IT_MAX_TOKENS, TRY_IT_PER_LISTING_PER_MINUTE, TRY_IT_PER_USER_PER_MINUTE
from market import listings
from store.inference.client import StreamEvent
from store.models import UsageDaily


@pytest.fixture
def engine(monkeypatch):
    requests = []

    async def stream_generation(request):
        requests.append(request)
        yield StreamEvent("text", "We ship ")
        yield StreamEvent("done", info={"text": "We ship worldwide.", "finish_reason": "stop", "prompt_tokens": 9,
                                        "completion_tokens": 4})

    monkeypatch.setattr("market.tryit.stream_generation", stream_generation)
    return requests


def _try(person, listing, message="Do you ship to Canada?"):
    return person.client.post(reverse("market:try_it", args=[listing.slug]), {"message": message})


def test_it_answers_a_signed_in_person_capped_and_billed_to_nobody(charlie, listing, engine):
    response = _try(charlie, listing)
    assert response.status_code == 200 and b"We ship worldwide." in response.content
    [request] = engine
    assert request.max_tokens == TRY_IT_MAX_TOKENS
    assert request.model_key == f"tuned:{listing.latest_version().tuned_model_id}"
    assert not UsageDaily.objects.exists()


def test_it_sends_anonymous_visitors_to_sign_in(client, listing, engine):
    response = client.post(reverse("market:try_it", args=[listing.slug]), {"message": "Hi"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert engine == []


def test_it_limits_each_person_per_minute(charlie, listing, engine):
    for _ in range(TRY_IT_PER_USER_PER_MINUTE):
        assert _try(charlie, listing).status_code == 200
    refused = _try(charlie, listing)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert b"You have reached the try-it limit" in refused.content
    assert len(engine) == TRY_IT_PER_USER_PER_MINUTE


def test_it_limits_each_listing_across_people(charlie, listing, engine, monkeypatch):
    from tests.conftest import _person

    # A small listing bucket: it refills at its size per minute, so a slow machine cannot sneak a turn in.
    monkeypatch.setattr("market.tryit.TRY_IT_PER_LISTING_PER_MINUTE", 3)
    assert TRY_IT_PER_USER_PER_MINUTE >= 2 and TRY_IT_PER_LISTING_PER_MINUTE > TRY_IT_PER_USER_PER_MINUTE
    people = [charlie, _person("dora@dora-sandals.example", "Dora Sandals")]
    for turn in range(3):
        assert _try(people[turn % 2], listing).status_code == 200
    refused = _try(people[0], listing)
    assert refused.status_code == 429 and b"This model has reached the try-it limit" in refused.content


@pytest.mark.parametrize("message", ["", "x" * 1001, "bad\x00byte"])
def test_it_refuses_empty_long_or_invalid_messages(charlie, listing, engine, message):
    response = _try(charlie, listing, message)
    assert response.status_code == 400 and engine == []


def test_it_is_only_for_public_listings(alice, charlie, listing, engine):
    listings.set_published(listing, False)
    assert _try(charlie, listing).status_code == 404
    assert _try(alice, listing).status_code == 404  # the publisher has its own playground for unlisted models
    assert engine == []


def test_a_sentiment_listing_answers_with_a_label(alice, charlie, catalog, monkeypatch):
    from tests.market.conftest import publishable

    async def classify(request):
        return {"results": [{"label": "negative", "score": 0.93, "scores": {}}], "prompt_tokens": 3}

    monkeypatch.setattr("market.tryit.classify", classify)
    moods = listings.publish(alice.organization, publishable(alice.organization, catalog["all-minilm-l6-v2"], "m",
                                                             task="sentiment"),
                             title="Mood Meter", summary="x", license="mit")
    response = _try(charlie, moods, "My parcel never came")
    assert response.status_code == 200 and b"negative (0.93)" in response.content
    assert not UsageDaily.objects.exists()
