import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation, Membership, Role

pytestmark = pytest.mark.postgres


def test_it_lets_an_admin_invite_and_shows_the_link(alice, caplog):
    response = alice.client.post(reverse("accounts:members"), {"email": "new@alice-shoes.example", "role": "agent"})
    assert response.status_code == 200
    invitation = Invitation.objects.get(email="new@alice-shoes.example")
    link = reverse("accounts:accept_invitation", args=[invitation.token])
    assert link in response.content.decode()
    assert any(link in record.getMessage() for record in caplog.records), "the link is printed in the log"


def test_it_lets_an_invitee_sign_up_into_the_organization(alice, db):
    invitation = Invitation.objects.create(organization=alice.organization, email="eve@example.com", role=Role.AGENT)
    client = Client()
    response = client.post(reverse("accounts:signup_invited", args=[invitation.token]),
                           {"email": "eve@example.com", "password": "another-long-passphrase"})
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="eve@example.com")
    assert (membership.organization, membership.role) == (alice.organization, Role.AGENT)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None


def test_it_lets_an_existing_user_accept_an_invitation(alice, charlie):
    invitation = Invitation.objects.create(organization=alice.organization, email=charlie.user.email)
    response = charlie.client.post(reverse("accounts:accept_invitation", args=[invitation.token]))
    assert response.status_code == 302
    assert Membership.objects.filter(user=charlie.user, organization=alice.organization).exists()


def test_it_refuses_a_used_invitation(alice, charlie):
    invitation = Invitation.objects.create(organization=alice.organization, email=charlie.user.email)
    charlie.client.post(reverse("accounts:accept_invitation", args=[invitation.token]))
    again = charlie.client.get(reverse("accounts:accept_invitation", args=[invitation.token]))
    assert again.status_code == 410


def test_it_forbids_agents_from_inviting(alice, bob):
    response = bob.client.post(reverse("accounts:members"), {"email": "x@example.com", "role": "admin"})
    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_it_changes_a_role(alice, bob):
    response = alice.client.post(reverse("accounts:change_role", args=[bob.membership.pk]), {"role": "admin"})
    assert response.status_code == 302
    bob.membership.refresh_from_db()
    assert bob.membership.role == Role.ADMIN


def test_it_keeps_at_least_one_admin(alice):
    alice.client.post(reverse("accounts:change_role", args=[alice.membership.pk]), {"role": "agent"})
    alice.membership.refresh_from_db()
    assert alice.membership.role == Role.ADMIN
    page = alice.client.get(reverse("accounts:members"))
    assert "at least one admin" in page.content.decode()


def test_it_removes_a_member(alice, bob):
    alice.client.post(reverse("accounts:remove_member", args=[bob.membership.pk]))
    assert not Membership.objects.filter(pk=bob.membership.pk).exists()


def test_it_hides_members_of_other_organizations(alice, charlie):
    # charlie cannot touch alice's memberships, nor even learn they exist
    assert charlie.client.post(reverse("accounts:remove_member", args=[alice.membership.pk])).status_code == 404
    assert charlie.client.post(reverse("accounts:change_role", args=[alice.membership.pk]),
                               {"role": "agent"}).status_code == 404
    page = charlie.client.get(reverse("accounts:members")).content.decode()
    assert "alice@" not in page
    assert re.search("charlie@charlie-boots.example", page)


def test_it_forbids_agents_from_changing_roles(alice, bob):
    response = bob.client.post(reverse("accounts:change_role", args=[alice.membership.pk]), {"role": "agent"})
    assert response.status_code == 403
