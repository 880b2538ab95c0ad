"""Under `script-src 'self'` every page behaviour that used to be an inline handler, an inline <script> or
htmx's hx-on still works — in a real browser, which would silently refuse anything inline — and the
browser reports no policy violation on the way."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import live_user, make_tuned

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "strict-passphrase-123"
ACTIVE = re.compile(r"(^|\s)active(\s|$)")


@pytest.fixture
def owner(live, catalog):
    from accounts import people
    from accounts.models import Membership, Role
    from chat.models import CannedReply
    from chat.widgets import create_widget
    from store import deploy

    user = live_user("kim@strict-shoes.example", PASSWORD, "Kim Owner")
    organization = people.create_organization("Strict Shoes", user)
    people.create_organization("Second Shop", user)
    teammate = live_user("lee@strict-shoes.example", PASSWORD, "Lee Teammate")
    Membership.objects.create(user=teammate, organization=organization, role=Role.AGENT)
    bot = deploy.create_or_update(organization, "strict-bot", deploy.ModelChoice(
        tuned=make_tuned(organization, catalog["smollm2-135m-instruct"])))
    widget = create_widget(organization, bot, None, ["https://shop.strict.example"], title="Strict help")
    CannedReply.objects.create(organization=organization, title="Shipping", text="It ships today.")
    return {"user": user, "organization": organization, "widget": widget, "url": live.url}


@pytest.fixture
def page(context, owner):
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: violations.append(str(error)))
    page.violations = violations
    page.goto(owner["url"] + "/accounts/login/")
    page.fill("#id_username", owner["user"].email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    yield page
    assert page.violations == []


def test_the_policy_is_strict_and_htmx_may_not_eval(page, owner):
    response = page.goto(owner["url"] + "/")
    assert "script-src 'self';" in response.headers["content-security-policy"]
    assert page.evaluate("window.htmx.config.allowEval") is False


def test_task_chips_follow_their_radio(page, owner):
    page.goto(owner["url"] + "/")
    chips = page.locator("fieldset.chips label.chip")
    expect(chips.first).to_have_class(ACTIVE)
    chips.nth(1).click()
    expect(chips.nth(1)).to_have_class(ACTIVE)
    expect(chips.first).not_to_have_class(ACTIVE)


def test_a_new_api_key_is_selected_and_copied_and_revoking_asks_first(page, owner):
    from store.models import ApiKey

    page.goto(owner["url"] + "/api-keys/")
    page.fill("#id_name", "Kim's \"main\" key")
    page.click("button:has-text('Create key')")
    key_box = page.locator("#new-api-key")
    key_box.click()
    assert page.evaluate("(() => { const box = document.getElementById('new-api-key');"
                         " return box.selectionStart === 0 && box.selectionEnd === box.value.length; })()")
    # Stand in for the system clipboard (headless browsers have none to read back).
    page.evaluate("navigator.clipboard.writeText = (text) => { window.copiedText = text; return Promise.resolve(); }")
    page.click(".copy-box button")
    page.wait_for_function("window.copiedText !== undefined")
    assert page.evaluate("window.copiedText") == key_box.input_value()

    revokes: list[str] = []
    page.on("request", lambda request: revokes.append(request.url) if "/revoke" in request.url else None)
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("form[data-confirm] button")
    assert questions == ["Revoke Kim's \"main\" key? Calls with it will fail at once."]
    expect(key_box).to_be_visible()  # Cancel kept the page (the key is shown only once)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    expect(page.locator(".badge-bad", has_text="revoked")).to_be_visible()
    assert len(revokes) == 1  # only the confirmed click posted
    assert ApiKey.objects.get(name="Kim's \"main\" key").revoked_at is not None


def test_the_widget_snippet_is_copied_whole(page, owner):
    page.goto(f"{owner['url']}/chat/widgets/{owner['widget'].pk}/")
    page.evaluate("navigator.clipboard.writeText = (text) => { window.copiedText = text; return Promise.resolve(); }")
    button = page.locator("button[data-copy-from=embed-snippet]")
    button.click()
    page.wait_for_function("window.copiedText !== undefined")
    copied = page.evaluate("window.copiedText")
    assert copied == page.locator("#embed-snippet").text_content()
    assert "/static/chat/widget.js" in copied and owner["widget"].public_key in copied
    expect(button).to_have_text("Copied")
    expect(button).to_have_text("Copy", timeout=5_000)  # and back


def test_changing_a_role_or_the_organization_submits_at_once(page, owner):
    from accounts.models import Membership

    teammate = Membership.objects.get(organization=owner["organization"], user__email="lee@strict-shoes.example")
    page.goto(owner["url"] + "/accounts/members/")
    with page.expect_navigation():
        page.select_option(f"#role-{teammate.pk}", "admin")
    teammate.refresh_from_db()
    assert teammate.role == "admin"

    second = Membership.objects.get(user=owner["user"], organization__name="Second Shop").organization
    with page.expect_navigation():
        page.select_option("#org-switch", str(second.pk))
    expect(page.locator(".messages")).to_contain_text("Now working in Second Shop")
    expect(page.locator("#org-switch")).to_have_value(str(second.pk))


def test_the_conversation_page_inserts_canned_replies_and_clears_sent_forms(page, owner):
    from chat.conversations import append_message, current_conversation
    from chat.identity import open_visitor
    from chat.models import Author, Visitor

    conversation = current_conversation(open_visitor(owner["widget"], identity=None), create=True)
    append_message(conversation, Author.CUSTOMER, "Where is my order?")
    page.goto(owner["url"] + f"/console/{conversation.pk}/")
    page.fill("#reply-text", "Hello.")
    page.select_option("#canned-select", "It ships today.")
    expect(page.locator("#reply-text")).to_have_value("Hello. It ships today.")
    expect(page.locator("#canned-select")).to_have_value("")
    expect(page.locator("#reply-text")).to_be_focused()
    page.click("#reply-send")
    expect(page.locator("#transcript")).to_contain_text("Hello. It ships today.")
    expect(page.locator("#reply-text")).to_have_value("")  # hx-on's reset, now data-reset-on-success

    erasures: list[str] = []
    page.on("request", lambda request: erasures.append(request.url) if "erase" in request.url else None)
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("form[data-confirm] button")
    assert questions and questions[0].startswith("Erase this visitor")

    # The next request the page makes comes after any the cancelled form would have made.
    page.fill("#note-text", "Check the courier")
    page.click("#note-send")
    expect(page.locator("#transcript .tmsg-note")).to_contain_text("Check the courier")
    expect(page.locator("#note-text")).to_have_value("")
    assert erasures == [] and Visitor.objects.filter(pk=conversation.visitor_id).exists()


def test_the_demo_shop_and_the_widget_frame_run_without_inline_code(context, owner, host_site):
    """The demo shop's own code moved to /static/chat/demo-shop.js; the frame keeps its strict policy."""
    import json

    from django.template.loader import render_to_string

    from chat.identity import identity_hash
    from chat.widgets import create_widget

    widget = create_widget(owner["organization"], owner["widget"].deployment, None, [host_site.origin],
                           title="Strict shop help")
    identity = {"id": "strict-customer", "name": "Robin", "email": "robin@example.com",
                "hash": identity_hash(widget, "strict-customer")}
    host_site.html = render_to_string("chat/demo_shop.html", {
        "site_url": owner["url"], "widget_key": widget.public_key, "identity_json": json.dumps(identity)})
    shop = context.new_page()
    violations: list[str] = []
    shop.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    shop.goto(host_site.origin)
    root = shop.locator(f"#gptstore-chat-{widget.public_key}")
    expect(root.locator("button.gs-launcher")).to_be_visible()
    shop.click("#demo-signin")
    expect(shop.locator("#demo-signin")).to_have_text("Signed in as Robin")
    shop.locator("button[data-open-chat]").last.click()
    expect(root.locator("button.gs-launcher")).to_have_attribute("aria-expanded", "true")
    panel = shop.frame_locator(f"#gptstore-chat-{widget.public_key} iframe")
    expect(panel.locator("#gs-input")).to_be_visible()
    panel.locator("#gs-input").fill("Do you ship to Canada?")
    panel.locator("#gs-input").press("Enter")  # frame-ui.js and frame.js run: the message goes out
    expect(panel.locator(".gs-msg.gs-customer").last).to_have_text("Do you ship to Canada?", timeout=20_000)
    assert violations == []
