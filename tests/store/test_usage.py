import pytest

from store.api_keys import create_api_key
from store.models import UsageDaily
from store.usage import record_usage


def test_it_meters_tokens_per_key_model_and_day(alice):
    key, _ = create_api_key(alice.organization, "prod")
    record_usage(alice.organization.pk, "acme-support", 10, 5, api_key=key)
    record_usage(alice.organization.pk, "acme-support", 20, 7, api_key=key)
    record_usage(alice.organization.pk, "acme-support", 3, 1)  # the playground
    row = UsageDaily.objects.get(api_key=key)
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (2, 30, 12)
    assert UsageDaily.objects.get(source="playground").total_tokens == 4


def test_the_usage_page_charts_this_organization_only(alice, charlie):
    key, _ = create_api_key(alice.organization, "prod")
    record_usage(alice.organization.pk, "acme-support", 100, 50, api_key=key)
    record_usage(charlie.organization.pk, "charlie-bot", 999, 999)
    page = alice.client.get("/usage/").content.decode()
    assert "<svg" in page and "acme-support" in page and "charlie-bot" not in page
    assert "<td>100</td><td>50</td>" in page and "999" not in page


@pytest.mark.parametrize(("asked", "shown"), [("7", 7), ("500", 90), ("0", 1), ("9" * 40, 30), ("abc", 30),
                                               ("٣", 30)])
def test_the_usage_page_keeps_its_range_within_bounds(alice, asked, shown):
    response = alice.client.get("/usage/", {"days": asked})
    assert response.status_code == 200
    assert response.context["days"] == shown
