"""Registering a hosted model: the key is encrypted at rest and never shown again; the upstream is deployable in
its organization only."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from store import deploy
from store.models import Deployment
from tests.upstreams.conftest import UPSTREAM_KEY, host
from upstreams import registry
from upstreams.models import UpstreamModel
from upstreams.secrets import decrypt

pytestmark = pytest.mark.django_db

FORM = {"name": "Big model", "base_url": "https://api.example.com/v1/", "model_name": "gpt-big",
        "api_key": UPSTREAM_KEY}


def test_it_stores_the_key_encrypted_and_shows_only_its_prefix(alice):
    response = alice.client.post("/upstreams/", FORM)
    assert response.status_code == 302
    upstream = UpstreamModel.objects.get(organization=alice.organization)
    assert upstream.base_url == "https://api.example.com/v1" and upstream.api_key_prefix == UPSTREAM_KEY[:6] + "…"
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM upstreams_upstreammodel")
        (stored,) = cursor.fetchone()
    assert UPSTREAM_KEY not in stored and decrypt(stored) == UPSTREAM_KEY
    page = alice.client.get("/upstreams/").content.decode()
    assert "Big model" in page and UPSTREAM_KEY[:6] in page and UPSTREAM_KEY not in page


def test_it_refuses_urls_that_are_not_http_or_carry_credentials(alice):
    for url in ("ftp://example.com/v1", "https://user:pw@example.com/v1", "https://example.com/v1?x=1"):
        response = alice.client.post("/upstreams/", {**FORM, "base_url": url})
        assert response.status_code == 400, url
    assert not UpstreamModel.objects.exists()


def test_it_replaces_the_key(alice):
    upstream, _ = host(alice.organization, "https://api.example.com/v1", "m")
    alice.client.post(f"/upstreams/{upstream.pk}/key/", {"api_key": "sk-new-key-42"})
    upstream.refresh_from_db()
    assert decrypt(upstream.api_key_encrypted) == "sk-new-key-42" and upstream.api_key_prefix == "sk-new…"


def test_a_hosted_model_is_a_dialogue_model_in_the_deployment_form(alice):
    upstream, deployment = host(alice.organization, "https://api.example.com/v1", "gpt-big")
    assert deployment.task == "dialogue" and deployment.model_key == f"upstream:{upstream.pk}"
    page = alice.client.get("/deployments/new/").content.decode()
    assert f'value="upstream:{upstream.pk}"' in page and "Hosted models" in page
    assert alice.client.get("/deployments/hosted/").status_code == 200
    edit = alice.client.get("/deployments/hosted/edit/").content.decode()
    assert f'value="upstream:{upstream.pk}" selected' in edit


def test_the_deployment_form_deploys_it(alice):
    upstream = registry.register(alice.organization, "Big model", "https://api.example.com/v1", "gpt-big", "")
    response = alice.client.post("/deployments/new/", {"name": "Big", "slug": "big", "model": upstream.reference,
                                                       "temperature": 0.3, "top_p": 1, "max_tokens": 64})
    assert response.status_code == 302
    deployment = Deployment.objects.get(slug="big")
    assert deployment.upstream_model == upstream and deployment.task == "dialogue"
    assert "Big model" in alice.client.get("/deployments/big/").content.decode()


def test_revisions_roll_back_to_the_hosted_model(alice, catalog):
    upstream, deployment = host(alice.organization, "https://api.example.com/v1", "gpt-big")
    deploy.create_or_update(alice.organization, "hosted", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    rolled = deploy.rollback(Deployment.objects.get(pk=deployment.pk), 1)
    assert rolled.upstream_model_id == upstream.pk and rolled.base_model_id is None


def test_it_cannot_be_removed_while_deployed(alice):
    upstream, deployment = host(alice.organization, "https://api.example.com/v1", "gpt-big")
    with pytest.raises(ValidationError, match="hosted"):
        registry.delete(upstream)
    deployment.delete()
    registry.delete(upstream)
    assert not UpstreamModel.objects.exists()


def test_another_organization_never_sees_or_deploys_it(alice, charlie):
    upstream, _ = host(alice.organization, "https://api.example.com/v1", "gpt-big")
    assert "Upstream hosted" not in charlie.client.get("/upstreams/").content.decode()
    assert f"upstream:{upstream.pk}" not in charlie.client.get("/deployments/new/").content.decode()
    assert charlie.client.post(f"/upstreams/{upstream.pk}/key/", {"api_key": "sk-stolen"}).status_code == 404
    assert charlie.client.post(f"/upstreams/{upstream.pk}/delete/").status_code == 404
    with pytest.raises(ValidationError):
        deploy.find_model(charlie.organization, f"upstream:{upstream.pk}")
    with pytest.raises(ValidationError):
        deploy.create_or_update(charlie.organization, "stolen", deploy.ModelChoice(upstream=upstream))
    response = charlie.client.post("/deployments/new/", {"name": "Stolen", "slug": "stolen", "model":
                                   f"upstream:{upstream.pk}", "temperature": 0.3, "top_p": 1, "max_tokens": 64})
    assert response.status_code in (200, 400) and not Deployment.objects.filter(slug="stolen").exists()
    upstream.refresh_from_db()
    assert decrypt(upstream.api_key_encrypted) == UPSTREAM_KEY


def test_a_teammate_who_is_not_an_admin_cannot_register(bob):
    response = bob.client.post("/upstreams/", FORM)
    assert response.status_code in (302, 403) and not UpstreamModel.objects.exists()


def test_the_storefront_lists_an_organizations_hosted_models_to_it_alone(alice, bob, charlie):
    upstream = registry.register(alice.organization, "Big hosted model", "https://api.example.com/v1", "gpt-big", "")
    for person in (alice, bob):
        page = person.client.get("/").content.decode()
        assert "Your hosted models" in page and "Big hosted model" in page and "gpt-big" in page
        assert f"?model=upstream%3A{upstream.pk}" in page
    assert "Big hosted model" not in charlie.client.get("/").content.decode()
    assert "Big hosted model" not in alice.client.get("/", {"task": "sentiment"}).content.decode()
    assert "Big hosted model" not in alice.client.get("/", {"q": "minilm"}).content.decode()
    assert "Big hosted model" in alice.client.get("/", {"q": "gpt-big"}).content.decode()


def test_deploy_from_the_storefront_opens_the_form_with_the_hosted_model_chosen(alice, charlie):
    upstream = registry.register(alice.organization, "Big hosted model", "https://api.example.com/v1", "gpt-big", "")
    form = alice.client.get("/deployments/new/", {"model": upstream.reference}).content.decode()
    assert 'value="Big hosted model"' in form and 'value="big-hosted-model"' in form
    assert f'<option value="{upstream.reference}" selected>' in form
    # Another organization's upstream id names nothing there: no name leaks into the form.
    other = charlie.client.get("/deployments/new/", {"model": upstream.reference}).content.decode()
    assert "Big hosted model" not in other


def test_the_form_speaks_plainly(alice):
    """Labels as people write them (Django would title-case the field names: "Base url", "Api key") and no
    Markdown backticks shown as text."""
    page = alice.client.get("/upstreams/").content.decode()
    assert 'for="id_base_url">Base URL:' in page and 'for="id_api_key">API key:' in page
    assert "`" not in page
