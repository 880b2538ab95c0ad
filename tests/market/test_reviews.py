"""Reviews: one per installing organization per listing, editable, only after the organization used it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from market.models import Review
from market.reviews import save_review
from tests.market.conftest import use


def test_it_refuses_a_review_before_install(charlie, listing):
    with pytest.raises(ValidationError, match="Install"):
        save_review(charlie.organization, listing, 5, "Great")


def test_it_refuses_a_review_before_use(charlie, listing, installed):
    with pytest.raises(ValidationError, match="Use this model"):
        save_review(charlie.organization, listing, 5, "Great")
    page = charlie.client.get(reverse("market:listing", args=[listing.slug])).content.decode()
    assert "Use this model" in page and 'action="/market/shoe-helper/review/"' not in page


def test_it_refuses_the_publishers_own_review(alice, listing):
    response = alice.client.post(reverse("market:review", args=[listing.slug]), {"rating": 5, "text": "Mine!"})
    assert response.status_code == 302 and not Review.objects.exists()


def test_it_takes_one_editable_review_per_organization_after_use(charlie, listing, installed):
    use(installed[1])
    url = reverse("market:review", args=[listing.slug])
    assert charlie.client.post(url, {"rating": 2, "text": "Slow"}).status_code == 302
    assert charlie.client.post(url, {"rating": 4, "text": "Better now"}).status_code == 302
    review = Review.objects.get()
    assert (review.organization, review.rating, review.text) == (charlie.organization, 4, "Better now")
    listing.refresh_from_db()
    assert (listing.rating_average, listing.rating_count) == (4.0, 1)
    assert "Better now" in charlie.client.get(reverse("market:listing", args=[listing.slug])).content.decode()


def test_the_listing_averages_the_organizations_ratings(charlie, listing, installed):
    from market import installs
    from tests.conftest import _person

    use(installed[1])
    save_review(charlie.organization, listing, 5, "")
    dora = _person("dora@dora-sandals.example", "Dora Sandals")
    use(installs.deploy_installed(installs.install(dora.organization, listing), "dora-helper"))
    save_review(dora.organization, listing, 2, "meh")
    listing.refresh_from_db()
    assert (listing.rating_average, listing.rating_count) == (3.5, 2)


@pytest.mark.parametrize("rating", [0, 6, "5", True])
def test_it_refuses_a_rating_outside_one_to_five(charlie, listing, installed, rating):
    use(installed[1])
    with pytest.raises(ValidationError, match="rating"):
        save_review(charlie.organization, listing, rating, "")


def test_it_refuses_invalid_review_text(charlie, listing, installed):
    use(installed[1])
    with pytest.raises(ValidationError, match="control character"):
        save_review(charlie.organization, listing, 3, "bad\x00text")
    assert charlie.client.post(reverse("market:review", args=[listing.slug]), {"rating": 9}).status_code == 302
    assert not Review.objects.exists()


def test_an_agent_cannot_review(bob, listing):
    assert bob.client.post(reverse("market:review", args=[listing.slug]), {"rating": 5}).status_code == 403
