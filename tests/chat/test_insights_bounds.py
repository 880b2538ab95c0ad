"""The date range of the review dashboard and the transcript export: one rule (core/bounds.py), refused clearly."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.bounds import DAYS_IN_RANGE, EARLIEST_DATE, LATEST_DATE

PAGES = ["/console/insights/", "/console/export/"]


def _problem(response) -> str:
    return response.content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_it_refuses_a_range_across_the_whole_calendar(alice, page):
    # Before: the dashboard built one entry per day of 0001..9999 (3.6 million) and took > 11 GB.
    response = alice.client.get(page, {"start": "0001-01-01", "end": "9999-12-31"})
    assert response.status_code == 400
    assert f"between {EARLIEST_DATE} and {LATEST_DATE}" in _problem(response)


@pytest.mark.parametrize("page", PAGES)
def test_it_refuses_a_range_longer_than_the_bound(alice, page):
    response = alice.client.get(page, {"start": "2001-01-01", "end": "2011-01-01"})
    assert response.status_code == 400
    assert DAYS_IN_RANGE.message() in _problem(response)
    assert "3653 days" in _problem(response)


@pytest.mark.parametrize("page", PAGES)
def test_it_accepts_the_longest_range(alice, page):
    end = EARLIEST_DATE + timedelta(days=int(DAYS_IN_RANGE.high) - 1)
    response = alice.client.get(page, {"start": EARLIEST_DATE.isoformat(), "end": end.isoformat()})
    assert response.status_code == 200


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("start,end,name", [("2024-13-45", "2024-12-31", "start"), ("2024-01-01", "yesterday", "end"),
                                            ("2024-01-01\x00", "", "start"), ("9" * 5000, "", "start")])
def test_it_names_a_malformed_date(alice, page, start, end, name):
    response = alice.client.get(page, {"start": start, "end": end})
    assert response.status_code == 400
    assert f"{name} is not a date" in _problem(response)


@pytest.mark.parametrize("page", PAGES)
def test_it_refuses_an_end_before_the_start(alice, page):
    response = alice.client.get(page, {"start": "2024-03-01", "end": "2024-02-01"})
    assert response.status_code == 400
    assert "end (2024-02-01) is before start (2024-03-01)" in _problem(response)


@pytest.mark.parametrize("page", PAGES)
def test_it_refuses_dates_outside_the_window_even_when_short(alice, page):
    response = alice.client.get(page, {"start": "1999-12-30", "end": "2000-01-02"})
    assert response.status_code == 400
    assert f"start must be between {EARLIEST_DATE} and {LATEST_DATE}" in _problem(response)


def test_the_page_states_the_rule_and_keeps_the_form_after_a_refusal(alice):
    page = alice.client.get("/console/insights/", {"start": "2001-01-01", "end": "2011-01-01"}).content.decode()
    assert 'role="alert"' in page and 'name="start"' in page and 'value="2001-01-01"' in page
    assert f"at most {DAYS_IN_RANGE.high} days" in page
    assert "Export CSV" not in page  # no export link for a range that would be refused


def test_without_dates_it_shows_the_last_thirty_days(alice):
    response = alice.client.get("/console/insights/")
    today = timezone.localdate()
    assert response.status_code == 200
    assert f'value="{today - timedelta(days=29)}"' in response.content.decode()
    assert f'value="{today}"' in response.content.decode()


def test_an_unknown_export_format_is_refused(alice):
    response = alice.client.get("/console/export/", {"format": "xlsx"})
    assert response.status_code == 400
    assert "format must be csv, json or jsonl" in response.content.decode()
