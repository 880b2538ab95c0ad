"""The marketplace storefront: search across name, summary, task, base and language; sort; moderation."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from market import listings
from market.models import Listing
from market.storefront import search
from tests.market.conftest import publishable


@pytest.fixture
def three(alice, catalog):
    chat, encoder = catalog["smollm2-135m-instruct"], catalog["all-minilm-l6-v2"]
    made = {
        "helper": listings.publish(alice.organization, publishable(alice.organization, chat, "a"), title="Shoe Helper",
                                   summary="Answers shoppers", license="mit", languages="en"),
        "moods": listings.publish(alice.organization, publishable(alice.organization, encoder, "b",
                                                                  task="sentiment"),
                                  title="Mood Meter", summary="Scores complaints", license="mit", languages="de, fr"),
        "returns": listings.publish(alice.organization, publishable(alice.organization, chat, "c"),
                                    title="Returns Bot", summary="Handles refunds", license="mit", languages="es"),
    }
    now = timezone.now()
    for age, (key, stats) in enumerate({"helper": (4.5, 2, 10), "moods": (3.0, 5, 30), "returns": (0, 0, 1)}.items()):
        Listing.objects.filter(pk=made[key].pk).update(rating_average=stats[0], rating_count=stats[1],
                                                       install_count=stats[2],
                                                       created_at=now - datetime.timedelta(days=age))
    return made


def _titles(queryset) -> list[str]:
    return [listing.title for listing in queryset]


@pytest.mark.parametrize(("query", "expected"), [
    ("helper", ["Shoe Helper"]),  # name
    ("refunds", ["Returns Bot"]),  # summary
    ("sentiment", ["Mood Meter"]),  # task
    ("minilm", ["Mood Meter"]),  # base
    ("fr", ["Mood Meter"]),  # language
    ("smollm2 es", ["Returns Bot"]),  # every word must match somewhere
])
def test_it_searches_name_summary_task_base_and_language(three, query, expected):
    assert _titles(search(query)) == expected


@pytest.mark.parametrize(("sort", "expected"), [
    ("rating", ["Shoe Helper", "Mood Meter", "Returns Bot"]),
    ("installs", ["Mood Meter", "Shoe Helper", "Returns Bot"]),
    ("newest", ["Shoe Helper", "Mood Meter", "Returns Bot"]),
])
def test_it_sorts_by_rating_installs_and_newest(three, sort, expected):
    assert _titles(search(sort=sort)) == expected


def test_it_leaves_out_unpublished_and_hidden_listings(three):
    listings.set_published(three["helper"], False)
    listings.set_hidden(three["moods"], True, "spam")
    assert _titles(search()) == ["Returns Bot"]


def test_the_page_and_its_htmx_partial_serve_the_same_grid(client, three):
    page = client.get(reverse("market:storefront"), {"q": "mood", "sort": "installs"})
    assert page.status_code == 200 and b"Mood Meter" in page.content and b"<html" in page.content
    partial = client.get(reverse("market:storefront"), {"q": "mood"}, HTTP_HX_REQUEST="true")
    assert b"Mood Meter" in partial.content and b"<html" not in partial.content and b"Shoe Helper" not in \
        partial.content


def test_an_unknown_sort_falls_back_to_newest(client, three):
    assert client.get(reverse("market:storefront"), {"sort": "'; drop"}).status_code == 200


def test_an_empty_marketplace_invites_a_publisher_and_an_empty_search_says_no_match(client, db):
    page = client.get(reverse("market:storefront")).content.decode()
    assert 'id="market-empty"' in page and reverse("market:publish") in page
    searched = client.get(reverse("market:storefront"), {"q": "boots"}).content.decode()
    assert "No listing matches “boots”" in searched and 'id="market-empty"' not in searched


def test_a_search_that_matches_nothing_among_listings_says_so(client, three):
    page = client.get(reverse("market:storefront"), {"q": "zzz-nothing"}).content.decode()
    assert "No listing matches “zzz-nothing”" in page
