from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Membership, Organization, Role


def test_it_creates_an_account_and_an_organization_with_its_admin(client, db):
    response = client.post(reverse("accounts:signup"), {
        "name": "Dana Doe", "email": "Dana@Example.com", "password": "a-long-unusual-passphrase",
        "organization": "Dana's Dresses"})
    assert response.status_code == 302
    user = get_user_model().objects.get(username="dana@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.ADMIN
    assert membership.organization.name == "Dana's Dresses"
    assert client.get(reverse("store:home")).context["active_organization"] == membership.organization


def test_it_refuses_a_duplicate_email(client, alice):
    response = client.post(reverse("accounts:signup"), {
        "email": alice.user.email, "password": "a-long-unusual-passphrase", "organization": "Copycat"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not Organization.objects.filter(name="Copycat").exists()


def test_it_refuses_a_weak_password(client, db):
    response = client.post(reverse("accounts:signup"), {
        "email": "weak@example.com", "password": "123", "organization": "Weak"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not get_user_model().objects.filter(username="weak@example.com").exists()


def test_it_signs_in_with_email_and_password(client, alice):
    from tests.conftest import PASSWORD

    response = client.post(reverse("accounts:login"), {"username": "ALICE@alice-shoes.example", "password": PASSWORD})
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == alice.user.pk


def test_it_rejects_a_wrong_password(client, alice):
    response = client.post(reverse("accounts:login"), {"username": alice.user.email, "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_it_signs_out(alice):
    response = alice.client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in alice.client.session
