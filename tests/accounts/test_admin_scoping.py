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


def test_every_model_of_the_store_is_in_the_admin():
    from django.apps import apps
    from django.contrib import admin

    missing = [model.__name__ for app in ("accounts", "store", "finetune", "chat")
               for model in apps.get_app_config(app).get_models() if model not in admin.site._registry]
    assert missing == []


def test_deployments_keys_and_conversations_are_scoped_too(alice, charlie, catalog):
    from chat.conversations import append_message, current_conversation
    from chat.identity import open_visitor
    from chat.models import Author
    from chat.widgets import create_widget
    from store import deploy
    from store.api_keys import create_api_key
    from tests.factories import make_tuned

    mine = deploy.create_or_update(alice.organization, "alice-bot", deploy.ModelChoice(
        tuned=make_tuned(alice.organization, catalog["smollm2-135m-instruct"])))
    theirs = deploy.create_or_update(charlie.organization, "charlie-bot", deploy.ModelChoice(
        tuned=make_tuned(charlie.organization, catalog["smollm2-135m-instruct"], "secret")))
    create_api_key(charlie.organization, "charlie key")
    widget = create_widget(charlie.organization, theirs)
    conversation = current_conversation(open_visitor(widget), create=True)
    append_message(conversation, Author.CUSTOMER, "charlie's customer secret")

    assert "charlie-bot" not in alice.client.get(reverse("admin:store_deployment_changelist")).content.decode()
    assert "charlie key" not in alice.client.get(reverse("admin:store_apikey_changelist")).content.decode()
    assert "charlie&#x27;s customer secret" not in alice.client.get(
        reverse("admin:chat_message_changelist")).content.decode()
    assert alice.client.get(reverse("admin:chat_conversation_change", args=[conversation.pk])).status_code == 302
    page = alice.client.get(reverse("admin:chat_widget_add")).content.decode()
    assert "alice-bot" in page and "charlie-bot" not in page  # foreign-key choices
    assert mine.pk
