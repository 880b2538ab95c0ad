"""A customer chats on a shop's own website; an agent watches, takes over and replies — in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from chat.widgets import create_widget
from store import deploy
from tests.e2e.conftest import screenshot
from tests.factories import deploy_tiny_bot, live_user, organization_with_key, train_tiny_sentiment

pytestmark = [pytest.mark.live, pytest.mark.browser]


@pytest.fixture
def shop(live, host_site, tiny_chat_base, tiny_encoder_base):
    from accounts.models import Membership, Role

    organization, admin, _ = organization_with_key("Browser Shoes")
    bot = deploy_tiny_bot(organization, tiny_chat_base, max_tokens=12)
    moods = deploy.create_or_update(organization, "moods",
                                    deploy.ModelChoice(tuned=train_tiny_sentiment(organization, tiny_encoder_base)))
    widget = create_widget(organization, bot, moods, [host_site.origin], title="Browser Shoes help")
    agent = live_user("sam@browser-shoes.example", "agent-passphrase-123", "Sam Agent")
    Membership.objects.create(user=agent, organization=organization, role=Role.AGENT)
    host_site.embed(live.url, widget.public_key)
    return {"widget": widget, "agent": agent, "url": live.url, "log": live.log}


def open_widget(page, widget):
    root = page.locator(f"#gptstore-chat-{widget.public_key}")
    launcher = root.locator("button.gs-launcher")
    expect(launcher).to_be_visible()
    launcher.click()
    return page.frame_locator(f"#gptstore-chat-{widget.public_key} iframe")


def test_a_customer_chats_and_an_agent_takes_over(context, shop, host_site):
    customer = context.new_page()
    customer.goto(host_site.origin)
    panel = open_widget(customer, shop["widget"])
    expect(panel.locator("#gs-input")).to_be_focused()
    panel.locator("#gs-input").click()  # as a customer would: the cross-site frame gets the focus
    panel.locator("#gs-input").fill("Where is my order? <b>asap</b>")
    panel.locator("#gs-input").press("Enter")
    expect(panel.locator(".gs-msg.gs-customer").last).to_have_text("Where is my order? <b>asap</b>", timeout=20_000)
    expect(panel.locator(".gs-msg.gs-bot[data-seq]")).to_have_count(1, timeout=60_000)  # streamed, then stored
    screenshot(customer, "widget-customer")

    agent_context = context.browser.new_context(viewport={"width": 1280, "height": 800})
    agent = agent_context.new_page()
    agent.goto(shop["url"] + "/accounts/login/")
    agent.fill("#id_username", "sam@browser-shoes.example")
    agent.fill("#id_password", "agent-passphrase-123")
    agent.click("button[type=submit]")
    agent.goto(shop["url"] + "/console/")
    row = agent.locator("#conversation-table tbody tr").first
    expect(row).to_contain_text("Where is my order? <b>asap</b>")
    expect(row.locator("td").nth(1).locator(".badge")).not_to_have_text("—", timeout=30_000)  # scored live
    screenshot(agent, "console-list")

    # The customer writes again while the agent watches the list: it updates without a reload.
    panel.locator("#gs-input").fill("Hello again")
    panel.locator("#gs-input").press("Enter")
    expect(agent.locator("#conversation-table tbody tr").first).to_contain_text("Hello again", timeout=30_000)

    # The customer closes the panel and goes back to the shop (its search box has the keyboard).
    customer.locator(f"#gptstore-chat-{shop['widget'].public_key} button.gs-launcher").click()
    expect(panel.locator("#gs-input")).to_be_hidden()
    customer.locator("#search").click()

    row.locator("a").click()
    expect(agent.locator("#transcript")).to_contain_text("Where is my order? <b>asap</b>")
    expect(agent.locator("#transcript .tmsg-customer .badge").first).to_have_text(
        re.compile("negative|neutral|positive"))
    agent.click("#take-over")
    expect(agent.locator("#conversation-status")).to_have_text("With an agent")
    # A person joined: the panel opens by itself, but leaves the customer's keyboard in the shop.
    launcher = customer.locator(f"#gptstore-chat-{shop['widget'].public_key} button.gs-launcher")
    expect(launcher).to_have_attribute("aria-expanded", "true", timeout=15_000)
    expect(panel.locator("#gs-status")).to_be_visible()
    customer.keyboard.type("boots")
    expect(customer.locator("#search")).to_have_value("boots")
    expect(panel.locator("#gs-input")).to_have_value("")
    agent.fill("#reply-text", "Hi, I'm Sam. Your parcel leaves today.")
    agent.click("#reply-send")
    expect(panel.locator(".gs-msg.gs-agent").last).to_have_text("Hi, I'm Sam. Your parcel leaves today.",
                                                                timeout=15_000)
    expect(panel.locator("#gs-status")).to_contain_text("Sam")
    screenshot(agent, "console-conversation")
    screenshot(customer, "widget-agent-reply")

    # A private note never reaches the customer.
    agent.fill("#note-text", "VIP: offer free express shipping")
    agent.click("#note-send")
    expect(agent.locator("#transcript .tmsg-note")).to_contain_text("VIP: offer free express shipping")
    # A reply sent after the note reaches the customer after the note would have (one ordered stream per
    # socket): once it is on screen, the note had its chance to leak.
    agent.fill("#reply-text", "It ships express, at no cost.")
    agent.click("#reply-send")
    expect(panel.locator(".gs-msg.gs-agent").last).to_have_text("It ships express, at no cost.", timeout=15_000)
    expect(panel.locator("#gs-transcript")).not_to_contain_text("VIP")

    # Reloading the shop keeps the conversation (and the replay holds no note either).
    customer.reload()
    panel = open_widget(customer, shop["widget"])
    expect(panel.locator(".gs-msg.gs-agent").last).to_have_text("It ships express, at no cost.", timeout=20_000)
    expect(panel.locator("#gs-transcript")).not_to_contain_text("VIP")
    agent_context.close()


def test_the_widget_refuses_sites_that_are_not_allowed(context, shop, live, host_site):
    from chat.models import Widget

    Widget.objects.filter(pk=shop["widget"].pk).update(allowed_origins=["https://elsewhere.example"])
    page = context.new_page()
    # The widget decides once its configuration request is answered: wait for that decision (its warning).
    with page.expect_console_message(lambda message: message.text.startswith("GPT Store chat:"),
                                     timeout=20_000) as warning:
        page.goto(host_site.origin)
    assert "is not one of the widget's allowed origins" in warning.value.text
    assert page.locator(f"#gptstore-chat-{shop['widget'].public_key} button.gs-launcher").count() == 0


def test_the_widget_works_on_a_phone_sized_screen(browser, shop, host_site):
    # Reduced motion (which the widget honours): the panel's opening animation scales it, and the
    # layout below is measured right after opening.
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  reduced_motion="reduce")
    page = context.new_page()
    page.goto(host_site.origin)
    panel = open_widget(page, shop["widget"])
    frame = page.locator(f"#gptstore-chat-{shop['widget'].public_key} iframe")
    box = frame.bounding_box()
    width, height = page.evaluate("[document.documentElement.clientWidth, window.innerHeight]")
    assert abs(box["width"] - width) <= 4 and abs(box["height"] - height) <= 6  # the whole screen, bar its border
    expect(panel.locator("#gs-close")).to_be_visible()
    # The panel focuses its message box once it has heard "open": from then on it is listening, so
    # the typed text cannot race the panel's start-up (or a focus change) under a loaded machine.
    expect(panel.locator("#gs-input")).to_be_focused()
    panel.locator("#gs-input").click()  # typed text goes to the frame that has the page's focus
    panel.locator("#gs-input").fill("Do you have size 44?")
    expect(panel.locator("#gs-input")).to_have_value("Do you have size 44?")
    expect(panel.locator("#gs-send")).to_be_enabled()
    panel.locator("#gs-send").click()
    expect(panel.locator(".gs-msg.gs-bot[data-seq]")).to_have_count(1, timeout=60_000)
    screenshot(page, "widget-phone")
    panel.locator("#gs-close").click()
    expect(page.locator(f"#gptstore-chat-{shop['widget'].public_key} button.gs-launcher")).to_be_visible()
    context.close()


def test_the_widget_is_usable_by_keyboard_alone(context, shop, host_site):
    page = context.new_page()
    page.goto(host_site.origin)
    launcher = page.locator(f"#gptstore-chat-{shop['widget'].public_key} button.gs-launcher")
    panel = page.frame_locator(f"#gptstore-chat-{shop['widget'].public_key} iframe")
    expect(launcher).to_be_visible()
    page.keyboard.press("Tab")  # the shop's search box
    page.keyboard.press("Tab")  # then the launcher
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    # The panel takes the focus when it hears "open", which waits for its page to load: seconds on a loaded
    # machine (the 5 s default failed in CI once).
    try:
        expect(panel.locator("#gs-input")).to_be_focused(timeout=30_000)
    except AssertionError as failure:  # say which half of the focus went missing (this has failed once in CI)
        frame = page.frame_locator(f"#gptstore-chat-{shop['widget'].public_key} iframe").locator("body")
        seen = frame.evaluate("() => ({active: document.activeElement && document.activeElement.id, "
                              "hasFocus: document.hasFocus(), disabled: document.getElementById('gs-input').disabled})")
        host = page.evaluate("() => ({active: document.activeElement && document.activeElement.tagName, "
                             "hasFocus: document.hasFocus()})")
        raise AssertionError(f"{failure}\npanel: {seen}; host page: {host}") from None
    # Keys typed now reach the message box (the browser's keyboard is in the panel, not only its DOM focus).
    page.keyboard.type("Typed without a mouse")
    expect(panel.locator("#gs-input")).to_have_value("Typed without a mouse")
    page.keyboard.press("Enter")
    expect(panel.locator(".gs-msg.gs-customer").last).to_have_text("Typed without a mouse", timeout=20_000)
    page.keyboard.press("Escape")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()
    expect(page.locator("#search")).to_have_value("")
