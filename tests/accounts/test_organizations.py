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


def test_it_answers_400_to_an_organization_that_is_not_an_id(alice):
    for bad in ("abc", "", "1.5", "-1", "٣", "9" * 40):
        response = alice.client.post(reverse("accounts:switch_organization"), {"organization": bad})
        assert response.status_code == 400, bad
        assert b"organization" in response.content
    assert alice.client.get(reverse("store:home")).context["active_organization"] == alice.organization


def test_it_follows_only_a_same_site_next(alice, charlie):
    Membership.objects.create(user=alice.user, organization=charlie.organization, role=Role.AGENT)
    url = reverse("accounts:switch_organization")
    for outside in ("https://evil.example/", "//evil.example/", "http://evil.example/finetune/", "\\\\evil.example"):
        response = alice.client.post(url, {"organization": charlie.organization.pk, "next": outside})
        assert response.status_code == 302
        assert response["Location"] == reverse("store:home"), outside
    response = alice.client.post(url, {"organization": alice.organization.pk, "next": "/finetune/?page=2"})
    assert response["Location"] == "/finetune/?page=2"
