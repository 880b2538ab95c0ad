"""The admin's filter sidebars offer only the organizations (and their objects) you administer.

Every registered ModelAdmin with a list_filter is visited, so a new admin is covered without a new test.
"""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts import people
from accounts.backends import SCOPED_APPS
from finetune.datasets import create_dataset
from tests.finetune.conftest import sentiment_csv


def _changelists_with_filters():
    return [(model._meta.app_label, f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            for model, model_admin in admin.site._registry.items() if model_admin.list_filter]


@pytest.fixture
def two_orgs_of_alice(alice):
    """Alice administers a second organization: a filter with a real choice to make."""
    return people.create_organization("Alice Outlet", alice.user)


def test_every_changelist_filter_hides_other_organizations(alice, two_orgs_of_alice, charlie):
    # Charlie's organization owns objects too, so a filter built from all rows would name it.
    create_dataset(charlie.organization, sentiment_csv(), "secret.csv", name="Charlie secrets")
    create_dataset(alice.organization, sentiment_csv(), "support.csv", name="Support messages")
    visited = 0
    for app_label, name in _changelists_with_filters():
        response = alice.client.get(reverse(name))
        if app_label not in SCOPED_APPS:  # Django's own (users, groups): operators only
            assert response.status_code == 403, name
            continue
        assert response.status_code == 200, name
        visited += 1
        page = response.content.decode()
        assert "Charlie Boots" not in page, name
        assert not re.search(rf"organization__id__exact={charlie.organization.pk}\b", page), name
    assert visited >= 11


def test_the_organization_filter_still_offers_your_own_organizations(alice, two_orgs_of_alice, charlie):
    page = alice.client.get(reverse("admin:accounts_membership_changelist")).content.decode()
    sidebar = page[page.index('id="changelist-filter"'):]
    assert "Alice Shoes" in sidebar and "Alice Outlet" in sidebar
    assert "Charlie Boots" not in sidebar


def test_a_superuser_still_sees_every_organization(alice, charlie):
    from django.test import Client

    operator = people.create_user("root@example.com", "a-long-test-passphrase")
    operator.is_superuser = operator.is_staff = True
    operator.save()
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("admin:accounts_membership_changelist")).content.decode()
    sidebar = page[page.index('id="changelist-filter"'):]
    assert "Alice Shoes" in sidebar and "Charlie Boots" in sidebar
