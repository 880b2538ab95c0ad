"""The marketplace in Django admin: org scoping, the installer's installed deployment, operator moderation."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from market.models import Listing


def _deployment_form(deployment) -> dict:
    return {"organization": deployment.organization_id, "name": "Boots helper", "slug": deployment.slug,
            "task": deployment.task, "tuned_model": deployment.tuned_model_id, "base_model": "",
            "system_prompt": "Be brief.", "temperature": 0.3, "top_p": 1.0, "max_tokens": 200, "status": "active",
            "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
            "revisions-TOTAL_FORMS": 0, "revisions-INITIAL_FORMS": 0}


def test_the_installer_saves_its_installed_deployment_in_the_admin(charlie, listing, installed):
    _, deployment = installed
    url = reverse("admin:store_deployment_change", args=[deployment.pk])
    response = charlie.client.post(url, _deployment_form(deployment))
    assert response.status_code == 302, response.context["adminform"].form.errors
    deployment.refresh_from_db()
    assert (deployment.system_prompt, deployment.revision, deployment.tuned_model) == (
        "Be brief.", 2, listing.versions.get().tuned_model)


def test_an_organization_that_did_not_install_cannot_pick_the_model_in_the_admin(alice, charlie, listing, installed):
    from tests.conftest import _person

    eve = _person("eve@eve-heels.example", "Eve Heels")
    page = eve.client.get(reverse("admin:store_deployment_add")).content.decode()
    assert str(listing.versions.get().tuned_model) not in page
    charlies = charlie.client.get(reverse("admin:store_deployment_add")).content.decode()
    assert str(listing.versions.get().tuned_model) in charlies


def test_an_operator_hides_listings_with_the_admin_action(alice, listing, django_user_model):
    operator = django_user_model.objects.create_superuser("ops@example.com", "ops@example.com", "x")
    client = Client()
    client.force_login(operator)
    response = client.post(reverse("admin:market_listing_changelist"),
                           {"action": "hide_listings", "_selected_action": [listing.pk]})
    assert response.status_code == 302
    assert Listing.objects.get().hidden


def test_a_publisher_has_no_moderation_action_and_cannot_unhide(alice, listing):
    listing.hidden = True
    listing.save()
    page = alice.client.get(reverse("admin:market_listing_changelist")).content.decode()
    assert "hide_listings" not in page
    alice.client.post(reverse("admin:market_listing_changelist"),
                      {"action": "unhide_listings", "_selected_action": [listing.pk]})
    form = alice.client.get(reverse("admin:market_listing_change", args=[listing.pk])).context["adminform"].form
    assert "hidden" not in form.fields
    assert Listing.objects.get().hidden
