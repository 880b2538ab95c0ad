"""The upload page's format examples read whole in their narrow column, in a real browser."""

import pytest

from tests.factories import live_user

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "upload-passphrase-123"


def test_the_format_examples_are_read_without_scrolling_sideways(context, live):
    from accounts import people

    owner = live_user("uma@upload-shoes.example", PASSWORD, "Uma Owner")
    people.create_organization("Upload Shoes", owner)
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + "/accounts/login/")
    page.fill("#id_username", owner.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto(live.url + "/finetune/datasets/upload/")
    overflow = page.eval_on_selector_all("aside pre", "els => els.map(e => e.scrollWidth - e.clientWidth)")
    assert len(overflow) == 3 and overflow == [0, 0, 0]  # overflowed by 207 and 96 px before
    assert "Yes! 3–5 business days." in page.inner_text("aside pre >> nth=0")
