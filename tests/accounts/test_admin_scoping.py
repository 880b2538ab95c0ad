"""Org admins use Django admin for their own organizations only."""

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Membership


def test_it_lets_an_org_admin_in_without_is_staff(alice):
    assert not alice.user.is_staff
    assert alice.client.get(reverse("admin:index")).status_code == 200


def test_it_keeps_agents_out(bob):
    assert bob.client.get(reverse("admin:index")).status_code == 403
    assert bob.client.get(reverse("admin:accounts_membership_changelist")).status_code in (302, 403)


def test_it_sends_anonymous_visitors_to_the_site_login(client, db):
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:login"))


def test_it_lists_only_your_organizations_objects(alice, bob, charlie):
    page = alice.client.get(reverse("admin:accounts_membership_changelist")).content.decode()
    assert "bob@alice-shoes.example" in page
    assert "charlie@charlie-boots.example" not in page
    orgs = alice.client.get(reverse("admin:accounts_organization_changelist")).content.decode()
    assert "Alice Shoes" in orgs and "Charlie Boots" not in orgs


def test_it_will_not_open_or_save_another_organizations_object(alice, charlie):
    url = reverse("admin:accounts_membership_change", args=[charlie.membership.pk])
    response = alice.client.get(url)
    assert response.status_code == 302  # admin's "doesn't exist" redirect: no hint that it exists
    alice.client.post(url, {"user": charlie.user.pk, "organization": charlie.organization.pk, "role": "agent",
                            "created_at_0": "2026-01-01", "created_at_1": "00:00:00"})
    charlie.membership.refresh_from_db()
    assert charlie.membership.role == "admin"
    delete = reverse("admin:accounts_membership_delete", args=[charlie.membership.pk])
    alice.client.post(delete, {"post": "yes"})
    assert Membership.objects.filter(pk=charlie.membership.pk).exists()


def test_it_limits_foreign_key_choices_to_your_organizations(alice, charlie):
    page = alice.client.get(reverse("admin:accounts_invitation_add")).content.decode()
    assert "Alice Shoes" in page and "Charlie Boots" not in page
    response = alice.client.post(reverse("admin:accounts_invitation_add"), {
        "organization": charlie.organization.pk, "email": "spy@example.com", "role": "admin",
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Invitation.objects.filter(email="spy@example.com").exists()


def test_it_can_create_an_object_in_your_own_organization(alice):
    response = alice.client.post(reverse("admin:accounts_invitation_add"), {
        "organization": alice.organization.pk, "email": "new@example.com", "role": "agent",
        "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00"})
    assert response.status_code == 302
    assert Invitation.objects.filter(email="new@example.com", organization=alice.organization).exists()


def test_it_offers_only_your_people_when_adding_a_membership(alice, bob, charlie):
    page = alice.client.get(reverse("admin:accounts_membership_add")).content.decode()
    assert "bob@alice-shoes.example" in page and "charlie@charlie-boots.example" not in page


def test_it_hides_users_and_groups_from_org_admins(alice):
    assert alice.client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_it_shows_everything_to_superusers(alice, charlie):
    root = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw")
    client = Client()
    client.force_login(root)
    page = client.get(reverse("admin:accounts_organization_changelist")).content.decode()
    assert "Alice Shoes" in page and "Charlie Boots" in page
