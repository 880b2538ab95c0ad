"""An API key's rate limits stay inside core.bounds (admin, model, create_api_key), and a key stored with 0 per
minute before the bounds existed gets a clear 429, never a 500."""

import json

import pytest
from django.core.exceptions import ValidationError

from core.bounds import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, OutOfBounds
from store.api_keys import create_api_key
from store.models import ApiKey
from tests.factories import bearer


def zero(key: ApiKey, field: str) -> None:
    # .update() skips validation: how a row from before the bounds (or a raw SQL edit) looks.
    ApiKey.objects.filter(pk=key.pk).update(**{field: 0})


def test_a_key_with_zero_requests_per_minute_answers_429(client, alice):
    key, plaintext = create_api_key(alice.organization, "zero")
    zero(key, "requests_per_minute")
    response = client.get("/v1/models", **bearer(plaintext))
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "0 requests per minute" in error["message"]


def test_a_key_with_zero_tokens_per_minute_answers_429(client, alice, alice_deployment):
    key, plaintext = create_api_key(alice.organization, "zero")
    zero(key, "tokens_per_minute")
    response = client.post("/v1/chat/completions", content_type="application/json", **bearer(plaintext),
                           data=json.dumps({"model": "acme-support", "messages": [{"role": "user", "content": "Hi"}]}))
    assert response.status_code == 429
    assert "0 tokens per minute" in response.json()["error"]["message"]


@pytest.mark.parametrize(("field", "bound"), [("requests_per_minute", REQUESTS_PER_MINUTE),
                                              ("tokens_per_minute", TOKENS_PER_MINUTE)])
def test_the_model_refuses_limits_outside_the_bounds(alice, field, bound):
    key, _ = create_api_key(alice.organization, "k")
    for value in (0, int(bound.high) + 1):
        setattr(key, field, value)
        with pytest.raises(ValidationError, match=field):
            key.full_clean()


@pytest.mark.parametrize("field", ["requests_per_minute", "tokens_per_minute"])
def test_create_api_key_refuses_zero_instead_of_using_the_default(alice, field):
    with pytest.raises(OutOfBounds, match=field):
        create_api_key(alice.organization, "k", **{field: 0})
    assert not ApiKey.objects.exists()


def test_the_admin_refuses_zero_requests_per_minute(alice):
    key, _ = create_api_key(alice.organization, "k")
    response = alice.client.post(f"/admin/store/apikey/{key.pk}/change/", {
        "organization": alice.organization.pk, "name": "k", "requests_per_minute": 0, "tokens_per_minute": 40_000,
        "revoked_at_0": "", "revoked_at_1": ""})
    assert response.status_code == 200  # the form again, with its error; a save redirects
    assert "Ensure this value is greater than or equal to 1" in response.content.decode()
    key.refresh_from_db()
    assert key.requests_per_minute == 120
