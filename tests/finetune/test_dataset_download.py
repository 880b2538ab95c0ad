"""Uploaded datasets leave the server only through the organization-checked download view.

/media/ is never served, with DEBUG on or off: a file's path (organization id, dataset id) is no secret.
"""

import importlib

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import clear_url_caches, reverse

from accounts.models import Membership, Role
from tests.conftest import _person
from tests.finetune.conftest import sentiment_csv


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug_urls(request):
    """The URLconf as the site builds it with DEBUG on and off (config/urls.py reads DEBUG at import)."""
    import config.urls

    with override_settings(DEBUG=request.param):
        importlib.reload(config.urls)
        clear_url_caches()
        yield request.param
    importlib.reload(config.urls)
    clear_url_caches()


def media_url(dataset) -> str:
    return settings.MEDIA_URL + dataset.file.name


def test_it_serves_no_media_file_to_anyone(debug_urls, sentiment_dataset, alice, charlie):
    assert sentiment_dataset.file.storage.exists(sentiment_dataset.file.name)
    url = media_url(sentiment_dataset)
    assert Client().get(url).status_code == 404
    assert charlie.client.get(url).status_code == 404
    assert alice.client.get(url).status_code == 404  # even the owner: downloads go through the view


def test_it_refuses_the_download_to_anonymous_visitors_and_outsiders(debug_urls, sentiment_dataset, charlie):
    url = reverse("finetune:dataset_download", args=[sentiment_dataset.public_id])
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("accounts:login"))
    assert charlie.client.get(url).status_code == 404


def test_it_answers_404_for_a_foreign_dataset_like_a_missing_one(alice, charlie_dataset):
    foreign = alice.client.get(reverse("finetune:dataset_download", args=[charlie_dataset.public_id]))
    missing = alice.client.get(reverse("finetune:dataset_download", args=["file-doesnotexist"]))
    assert foreign.status_code == missing.status_code == 404


def test_it_lets_the_owner_and_an_admin_teammate_download_the_file(debug_urls, sentiment_dataset, alice):
    teammate = _person("dana@alice-shoes.example", join=alice.organization, role=Role.ADMIN)
    url = reverse("finetune:dataset_download", args=[sentiment_dataset.public_id])
    for person in (alice, teammate):
        response = person.client.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == sentiment_csv()
        assert response["Content-Disposition"] == 'attachment; filename="support.csv"'


def test_it_keeps_the_file_from_agents_like_the_dataset_pages(sentiment_dataset, bob):
    assert Membership.objects.get(user=bob.user).role == Role.AGENT
    url = reverse("finetune:dataset_download", args=[sentiment_dataset.public_id])
    assert bob.client.get(url).status_code == 403
    assert bob.client.get(reverse("finetune:dataset_detail", args=[sentiment_dataset.public_id])).status_code == 403


def test_the_dataset_page_links_to_the_download(alice, sentiment_dataset):
    page = alice.client.get(reverse("finetune:dataset_detail", args=[sentiment_dataset.public_id])).content.decode()
    assert reverse("finetune:dataset_download", args=[sentiment_dataset.public_id]) in page
