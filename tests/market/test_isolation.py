"""Publisher and installer stay apart: in pages, /v1, the admin and sockets. The publisher sees counts,
never the installer's conversations, keys, prompts or data; the installer never sees the publisher's
datasets or jobs."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from finetune.datasets import create_dataset
from market import installs
from store import deploy
from store.api_keys import create_api_key
from store.inference.client import StreamEvent
from store.models import UsageDaily
from store.tuned import TunedModelInUse, delete_tuned_model
from tests.factories import bearer, sentiment_csv_bytes
from tests.market.conftest import use

SECRET_PROMPT = "charlies-private-prompt"


@pytest.fixture
def scripted_generation(monkeypatch):
    requests = []

    async def stream_generation(request):
        requests.append(request)
        yield StreamEvent("text", "Hello.")
        yield StreamEvent("done", info={"text": "Hello.", "finish_reason": "stop", "prompt_tokens": 7,
                                        "completion_tokens": 2})

    monkeypatch.setattr("knowledge.replies.stream_generation", stream_generation)
    return requests


def _chat(client, key, model, content="Hi"):
    return client.post("/v1/chat/completions", data=json.dumps({"model": model, "messages": [
        {"role": "user", "content": content}]}), content_type="application/json", **bearer(key))


def test_the_installer_calls_its_deployment_through_v1_metered_to_itself(client, alice, charlie, listing, installed,
                                                                        scripted_generation):
    _, deployment = installed
    _, key = create_api_key(charlie.organization, "boots key")
    response = _chat(client, key, deployment.slug, SECRET_PROMPT)
    assert response.status_code == 200, response.content
    assert scripted_generation[0].model_key == f"tuned:{listing.versions.get().tuned_model_id}"
    usage = UsageDaily.objects.get()
    assert (usage.organization, usage.model, usage.requests) == (charlie.organization, deployment.slug, 1)
    assert deployment.slug in [m["id"] for m in client.get("/v1/models", **bearer(key)).json()["data"]]


def test_the_publishers_key_cannot_reach_the_installers_deployment(client, alice, listing, installed,
                                                                   scripted_generation):
    _, deployment = installed
    _, key = create_api_key(alice.organization, "alice key")
    assert _chat(client, key, deployment.slug).status_code == 404
    assert client.get(f"/v1/models/{deployment.slug}", **bearer(key)).status_code == 404
    assert scripted_generation == []


def test_the_publisher_sees_counts_and_never_the_installers_names_prompts_or_keys(alice, charlie, listing, installed,
                                                                               scripted_generation, client):
    _, deployment = installed
    key_row, key = create_api_key(charlie.organization, "boots secret key")
    _chat(client, key, deployment.slug, SECRET_PROMPT)
    stats = installs.listing_stats(listing)
    assert (stats.installs, stats.requests, stats.tokens) == (1, 1, 9)
    for url in (reverse("market:listing", args=[listing.slug]), reverse("market:manage", args=[listing.slug]),
                reverse("store:tuned_detail", args=[deployment.tuned_model.short_id]), reverse("store:usage"),
                reverse("store:deployment_list"), reverse("market:storefront")):
        page = alice.client.get(url).content.decode()
        for private in ("Charlie", deployment.slug, SECRET_PROMPT, key_row.prefix):
            assert private not in page, (url, private)
    assert 'id="publisher-stats"' in alice.client.get(reverse("market:manage", args=[listing.slug])).content.decode()


def test_the_installer_never_sees_the_publishers_datasets_or_job(alice, charlie, listing, installed):
    dataset = create_dataset(alice.organization, sentiment_csv_bytes(), "alices-moods.csv",
                             name="alices private moods").dataset
    tuned = listing.versions.get().tuned_model
    for url in (reverse("market:listing", args=[listing.slug]), reverse("market:installation", args=[listing.slug]),
                reverse("store:deployment_detail", args=[installed[1].slug]),
                reverse("store:deployment_edit", args=[installed[1].slug])):
        response = charlie.client.get(url)
        assert response.status_code == 200
        assert b"alices private moods" not in response.content and dataset.public_id.encode() not in response.content
    assert charlie.client.get(reverse("store:tuned_detail", args=[tuned.short_id])).status_code == 404  # not public
    assert charlie.client.get(reverse("store:tuned_download", args=[tuned.short_id])).status_code == 404
    assert charlie.client.get(reverse("finetune:dataset_detail", args=[dataset.public_id])).status_code == 404


def test_the_publisher_cannot_change_or_delete_what_installers_serve(alice, charlie, listing, installed):
    _, deployment = installed
    tuned = deployment.tuned_model
    with pytest.raises(TunedModelInUse) as refused:
        delete_tuned_model(tuned)
    assert deployment.slug not in str(refused.value) and "1 installing organization" in str(refused.value)
    # The installer cannot touch the publisher's model either: it only deploys it.
    assert charlie.client.post(reverse("store:tuned_publish", args=[tuned.short_id]), {"published": "0"}
                               ).status_code == 404
    assert charlie.client.post(reverse("store:tuned_delete", args=[tuned.short_id])).status_code == 404


def test_the_admin_keeps_installations_and_reviews_with_the_installer(alice, charlie, listing, installed):
    installation, deployment = installed
    use(deployment)
    from market.reviews import save_review

    review = save_review(charlie.organization, listing, 4, "Good", charlie.user)
    for model, obj in (("installation", installation), ("review", review)):
        assert charlie.client.get(reverse(f"admin:market_{model}_change", args=[obj.pk])).status_code == 200
        assert alice.client.get(reverse(f"admin:market_{model}_change", args=[obj.pk])).status_code == 302
        changelist = alice.client.get(reverse(f"admin:market_{model}_changelist")).content.decode()
        assert "Charlie Boots" not in changelist
    version = listing.versions.get()
    assert alice.client.get(reverse("admin:market_listingversion_change", args=[version.pk])).status_code == 200
    assert charlie.client.get(reverse("admin:market_listingversion_change", args=[version.pk])).status_code == 302
    assert charlie.client.get(reverse("admin:market_listing_change", args=[listing.pk])).status_code == 302
    # The installer's deployment of the publisher's model: the installer's, in the admin too.
    assert alice.client.get(reverse("admin:store_deployment_change", args=[deployment.pk])).status_code == 302


def test_other_organizations_cannot_deploy_the_install(alice, charlie, listing, installed):
    from tests.conftest import _person

    eve = _person("eve@eve-heels.example", "Eve Heels")
    tuned = installed[1].tuned_model
    with pytest.raises(Exception, match="does not exist"):
        deploy.create_or_update(eve.organization, "copy", deploy.ModelChoice(tuned=tuned))
    response = eve.client.post(reverse("market:deploy", args=[listing.slug]), {"slug": "copy"})
    assert response.status_code == 404
