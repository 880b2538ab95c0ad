import pytest
from django.core.management import call_command

from store.api_keys import authenticate, create_api_key, hash_key, revoke
from store.models import ApiKey
from tests.factories import bearer


def test_it_stores_only_a_hash_and_a_prefix(alice):
    key, plaintext = create_api_key(alice.organization, "prod")
    assert plaintext.startswith(key.prefix + "_")
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.key_hash == hash_key(plaintext) and plaintext not in str(stored.__dict__)


def test_it_authenticates_a_valid_key_and_records_last_use(alice):
    key, plaintext = create_api_key(alice.organization, "prod")
    assert authenticate(plaintext) == key
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_it_rejects_a_revoked_or_altered_key(alice):
    key, plaintext = create_api_key(alice.organization, "prod")
    assert authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    revoke(key)
    assert authenticate(plaintext) is None


def test_it_refuses_to_restrict_a_key_to_another_organizations_deployment(alice, charlie_deployment):
    with pytest.raises(ValueError):
        create_api_key(alice.organization, "sneaky", [charlie_deployment])


def test_the_api_answers_401_without_a_key(client, db):
    response = client.get("/v1/models")
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "didn't provide an API key" in error["message"]


def test_the_api_answers_401_for_a_wrong_key(client, db):
    response = client.get("/v1/models", **bearer("gpts_deadbeef_not-a-real-key-at-all"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "not-a-real-key" not in response.json()["error"]["message"]  # the secret is masked


def test_the_api_answers_401_for_a_revoked_key(client, alice):
    key, plaintext = create_api_key(alice.organization, "prod")
    assert client.get("/v1/models", **bearer(plaintext)).status_code == 200
    revoke(key)
    assert client.get("/v1/models", **bearer(plaintext)).status_code == 401


def test_the_keys_page_shows_a_new_key_once(alice):
    response = alice.client.post("/api-keys/", {"name": "Shop backend", "requests_per_minute": 60,
                                                "tokens_per_minute": 10000})
    page = response.content.decode()
    key = ApiKey.objects.get(name="Shop backend")
    assert "will not be shown again" in page and f'value="{key.prefix}_' in page
    again = alice.client.get("/api-keys/").content.decode()
    assert f"{key.prefix}_…" in again and f'value="{key.prefix}_' not in again


def test_a_new_key_comes_with_the_environment_the_openai_sdks_read(alice, monkeypatch):
    import re

    from openai import OpenAI

    page = alice.client.post("/api-keys/", {"name": "Shop backend", "requests_per_minute": 60,
                                            "tokens_per_minute": 10000}).content.decode()
    exports = dict(re.findall(r"\bexport (OPENAI_\w+)=([^\s<]+)", page))
    assert set(exports) == {"OPENAI_BASE_URL", "OPENAI_API_KEY"}
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    sdk = OpenAI()  # configured from the environment alone, as a developer's unchanged code would be
    assert str(sdk.base_url).rstrip("/") == "http://testserver/v1" and sdk.api_key == exports["OPENAI_API_KEY"]
    assert alice.client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {sdk.api_key}").status_code == 200


def test_the_keys_page_hides_other_organizations_keys(alice, charlie):
    create_api_key(charlie.organization, "charlie secret key")
    assert "charlie secret key" not in alice.client.get("/api-keys/").content.decode()
    other = ApiKey.objects.get(name="charlie secret key")
    assert alice.client.post(f"/api-keys/{other.pk}/revoke/").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_agents_cannot_manage_keys(bob):
    assert bob.client.get("/api-keys/").status_code == 403


def test_the_command_prints_the_key_on_its_last_line(alice, alice_deployment, capsys):
    call_command("create_api_key", "--org", alice.organization.slug, "--name", "ci", "--deployment", "acme-support")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    key = authenticate(last)
    assert key is not None and list(key.deployments.values_list("slug", flat=True)) == ["acme-support"]


def test_the_command_refuses_an_unknown_deployment(alice):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no deployment 'nope'"):
        call_command("create_api_key", "--org", alice.organization.slug, "--deployment", "nope")
