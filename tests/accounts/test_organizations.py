from django.urls import reverse

from accounts.models import Membership, Role


def test_it_switches_the_active_organization(alice, charlie):
    Membership.objects.create(user=alice.user, organization=charlie.organization, role=Role.AGENT)
    response = alice.client.post(reverse("accounts:switch_organization"),
                                 {"organization": charlie.organization.pk, "next": "/"})
    assert response.status_code == 302
    page = alice.client.get(reverse("store:home"))
    assert page.context["active_organization"] == charlie.organization
    assert b"Charlie Boots" in page.content and b"Alice Shoes" in page.content  # the switcher lists both


def test_it_refuses_to_switch_into_an_organization_you_are_not_in(alice, charlie):
    response = alice.client.post(reverse("accounts:switch_organization"), {"organization": charlie.organization.pk})
    assert response.status_code == 404
    assert alice.client.get(reverse("store:home")).context["active_organization"] == alice.organization


def test_it_creates_another_organization(alice):
    response = alice.client.post(reverse("accounts:new_organization"), {"name": "Alice Sandals"})
    assert response.status_code == 302
    assert alice.user.memberships.filter(organization__name="Alice Sandals", role=Role.ADMIN).exists()
    assert alice.client.get("/").context["active_organization"].name == "Alice Sandals"


def test_it_sends_a_user_without_organization_to_create_one(client, db):
    from accounts import people

    user = people.create_user("loner@example.com", "x-long-enough-pass")
    client.force_login(user)
    response = client.get(reverse("accounts:members"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:new_organization")
