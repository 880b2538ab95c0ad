"""Publishing a tuned model as a listing, its versions, unpublishing, and an operator hiding it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from market import installs, listings
from market.models import Listing, ListingVersion
from store import deploy
from store.tuned import TunedModelInUse, delete_tuned_model
from tests.factories import make_tuned
from tests.market.conftest import publishable, second_version


def test_it_publishes_a_listing_with_version_one_and_its_evaluation_report(alice, chat_base):
    tuned = publishable(alice.organization, chat_base)
    response = alice.client.post(reverse("market:publish"), {
        "tuned_model": tuned.short_id, "title": "Shoe Helper", "summary": "Answers shoe shoppers",
        "languages": "en, de", "license": "apache-2.0", "allow_weights_download": "on", "changelog": "First."})
    listing = Listing.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("market:listing", args=[listing.slug])
    assert (listing.organization, listing.task, listing.base, listing.allow_weights_download) == (
        alice.organization, "dialogue", chat_base, True)
    version = listing.versions.get()
    assert (version.number, version.tuned_model, version.metrics["tuned"]["loss"]) == (1, tuned, 1.25)
    page = alice.client.get(reverse("market:listing", args=[listing.slug])).content.decode()
    assert "Evaluation report" in page and "1.250" in page


def test_it_refuses_to_publish_another_organizations_model(alice, charlie, chat_base):
    foreign = publishable(charlie.organization, chat_base, "boots")
    response = alice.client.post(reverse("market:publish"), {
        "tuned_model": foreign.short_id, "title": "Stolen", "summary": "x", "license": "mit"})
    assert response.status_code == 200 and not Listing.objects.exists()
    with pytest.raises(ValidationError):
        listings.publish(alice.organization, foreign, title="Stolen", summary="x", license="mit")


def test_it_refuses_a_title_whose_slug_is_a_marketplace_page(alice, chat_base):
    with pytest.raises(ValidationError, match="already exists"):
        listings.publish(alice.organization, publishable(alice.organization, chat_base), title="Installed",
                         summary="x", license="mit")
    # Through the page, the publisher reads it on the form (it was a server error) and nothing is listed.
    response = alice.client.post(reverse("market:publish"), {
        "tuned_model": publishable(alice.organization, chat_base, "second").short_id, "title": "Installed",
        "summary": "x", "license": "mit"})
    assert response.status_code == 200 and "already exists; pick another title" in response.content.decode()
    assert not Listing.objects.exists()


def test_it_numbers_versions_and_checks_their_task_and_base(alice, listing, chat_base, catalog):
    version = second_version(alice, listing, chat_base)
    assert version.number == 2 and listing.latest_version() == version
    moods = publishable(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment")
    with pytest.raises(ValidationError, match="is a dialogue model"):
        listings.add_version(listing, moods, "wrong task")
    with pytest.raises(ValidationError, match="already a version"):
        listings.add_version(listing, version.tuned_model, "twice")


def test_it_adds_a_version_from_the_manage_page(alice, listing, chat_base):
    tuned = publishable(alice.organization, chat_base)
    response = alice.client.post(reverse("market:add_version", args=[listing.slug]),
                                 {"tuned_model": tuned.short_id, "changelog": "Sandals"})
    assert response.status_code == 302
    assert list(listing.versions.values_list("number", "changelog")) == [(2, "Sandals"), (1, "First version.")]


def test_it_stops_new_installs_when_unpublished_and_keeps_existing_ones_serving(alice, charlie, listing, installed,
                                                                              chat_base):
    from tests.conftest import _person

    _, deployment = installed
    alice.client.post(reverse("market:set_published", args=[listing.slug]), {"published": "0"})
    listing.refresh_from_db()
    assert not listing.published
    dora = _person("dora@dora-sandals.example", "Dora Sandals")
    response = dora.client.post(reverse("market:install", args=[listing.slug]))
    assert response.status_code == 404 and not listing.installations.filter(organization=dora.organization).exists()
    assert dora.client.get(reverse("market:listing", args=[listing.slug])).status_code == 404
    # Charlie's pinned deployment still serves, can be edited, and his install page still opens.
    assert deploy.find_model(charlie.organization, deployment.tuned_model.short_id).tuned == deployment.tuned_model
    saved = deploy.create_or_update(charlie.organization, deployment.slug,
                                    deploy.ModelChoice(tuned=deployment.tuned_model), charlie.user, temperature=0.5)
    assert saved.revision == 2
    assert charlie.client.get(reverse("market:installation", args=[listing.slug])).status_code == 200


def test_it_lets_only_an_operator_hide_a_listing(alice, listing, django_user_model):
    assert alice.client.post(reverse("market:hide", args=[listing.slug]), {"hidden": "1"}).status_code == 403
    operator = django_user_model.objects.create_superuser("ops@example.com", "ops@example.com", "x")
    from django.test import Client

    client = Client()
    client.force_login(operator)
    assert client.post(reverse("market:hide", args=[listing.slug]), {"hidden": "1", "reason": "spam"}
                       ).status_code == 302
    listing.refresh_from_db()
    assert listing.hidden and listing.hidden_reason == "spam"
    assert not listings.public_listings().exists()
    # The publisher cannot undo moderation from the listing's form (hidden is not one of its fields).
    alice.client.post(reverse("market:manage", args=[listing.slug]), {
        "title": "Shoe Helper", "summary": "again", "license": "mit", "hidden": ""})
    listing.refresh_from_db()
    assert listing.hidden and listing.summary == "again"


def test_it_refuses_installs_of_a_hidden_listing(charlie, listing):
    listings.set_hidden(listing, True, "abuse")
    with pytest.raises(ValidationError, match="not available"):
        installs.install(charlie.organization, listing)


def test_it_keeps_the_publisher_from_deleting_a_listed_version(alice, listing):
    tuned = listing.versions.get().tuned_model
    with pytest.raises(TunedModelInUse, match="marketplace listing"):
        delete_tuned_model(tuned)
    assert ListingVersion.objects.filter(tuned_model=tuned).exists()


def test_it_shows_unpublished_listings_to_their_publisher_only(alice, bob, charlie, listing):
    listings.set_published(listing, False)
    url = reverse("market:listing", args=[listing.slug])
    assert alice.client.get(url).status_code == 200 and bob.client.get(url).status_code == 200
    assert charlie.client.get(url).status_code == 404


def test_it_shows_the_publisher_its_tuned_models_to_publish(alice, charlie, chat_base):
    make_tuned(charlie.organization, chat_base, "charlies")
    mine = publishable(alice.organization, chat_base)
    page = alice.client.get(reverse("market:publish")).content.decode()
    assert mine.short_id in page and "charlies" not in page.lower()
