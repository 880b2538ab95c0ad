"""Error pages in production (DEBUG off): branded, and they say what to do next."""

import pytest
from django.test import override_settings


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]


def test_a_missing_page_says_it_may_belong_to_another_organization(production, alice):
    response = alice.client.get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404 and 'id="error-page"' in page
    assert "<code>/no-such-page/</code>" in page and alice.organization.name in page


def test_an_agent_on_an_admin_page_is_told_to_ask_an_admin(production, bob):
    response = bob.client.get("/api-keys/")
    page = response.content.decode()
    assert response.status_code == 403 and "Only organization admins can do this." in page
    assert "Ask an admin" in page


@override_settings(ROOT_URLCONF="tests.core.failing_urls")
def test_a_server_error_is_a_page_without_a_traceback(production, client):
    client.raise_request_exception = False
    response = client.get("/fail/")
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in page and "Traceback" not in page
