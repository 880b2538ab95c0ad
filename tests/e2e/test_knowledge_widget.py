"""A customer asks on the shop's website: the answer comes from the shop's help centre with its source,
and a question it does not cover gets an honest "I don't know" and a person — in a real browser."""

import pytest
from playwright.sync_api import expect

from chat.widgets import create_widget
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from tests.e2e.conftest import screenshot
from tests.e2e.test_widget_and_console import open_widget
from tests.factories import deploy_tiny_bot, live_user, organization_with_key
from tests.knowledge.conftest import SMALL_FAQ
from tests.knowledge.test_live import wait_until_live

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.real_model]


@pytest.fixture
def knowledge_shop(live, host_site, catalog, tiny_chat_base):
    organization, _, _ = organization_with_key("Cited Shoes")
    knowledge_base = sources.create_knowledge_base(organization, "Help centre")
    source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="https://cited-shoes.example/help")
    wait_until_live(source)
    bot = deploy_tiny_bot(organization, tiny_chat_base)
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    widget = create_widget(organization, bot, None, [host_site.origin], title="Cited Shoes help")
    host_site.embed(live.url, widget.public_key, title="Cited Shoes")
    return widget


def open_latest_conversation_as_agent(context, live, organization):
    """A support agent of `organization` signs in and opens the console's first conversation: their page."""
    from accounts.models import Membership, Role
    agent_user = live_user("kim@cited-shoes.example", "agent-passphrase-123", "Kim Agent")
    Membership.objects.create(user=agent_user, organization=organization, role=Role.AGENT)
    agent = context.browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    agent.goto(live.url + "/accounts/login/")
    agent.fill("#id_username", "kim@cited-shoes.example")
    agent.fill("#id_password", "agent-passphrase-123")
    agent.click("button[type=submit]")
    agent.goto(live.url + "/console/")
    agent.locator("#conversation-table tbody tr").first.locator("a").click()
    return agent


def ask(panel, text: str) -> None:
    panel.locator("#gs-input").click()
    panel.locator("#gs-input").fill(text)
    panel.locator("#gs-input").press("Enter")


def ask_the_shop_about_express(context, shop, host_site):
    """Open the shop's widget and ask what express delivery costs: (page, panel, the bot's answer)."""
    page = context.new_page()
    page.goto(host_site.origin)
    panel = open_widget(page, shop)
    ask(panel, "hw much is express delivery??")
    answer = panel.locator(".gs-item-bot").last
    expect(answer.locator(".gs-msg[data-seq]")).to_contain_text("$12.95", timeout=60_000)
    return page, panel, answer


def test_the_answer_shows_its_source_and_an_unknown_question_gets_a_person(context, knowledge_shop, host_site, live):
    page, panel, answer = ask_the_shop_about_express(context, knowledge_shop, host_site)
    # The quoted entry's heading reads as one (bold), and the bubble's text is still exactly the reply.
    expect(answer.locator(".gs-msg[data-seq] strong.quote-heading").first).to_have_text("How much does shipping cost?")
    assert answer.locator(".gs-msg[data-seq]").text_content().startswith("How much does shipping cost?\nStandard")
    # The best passage is cited first; a close second one may follow it.
    source = answer.locator(".gs-sources a.gs-source").first
    expect(source).to_have_text("Shipping › How much does shipping cost?")
    expect(source).to_have_attribute("href", "https://cited-shoes.example/help")
    expect(source).to_have_attribute("rel", "noopener noreferrer")
    screenshot(page, "widget-knowledge-answer")

    ask(panel, "What year was the company founded?")
    expect(panel.locator(".gs-msg.gs-bot[data-seq]").last).to_have_text(
        "I don't know that one — shall I get someone from the team?", timeout=60_000)
    # Nobody from the team is online: the customer is asked for an email address instead.
    expect(panel.locator(".gs-msg.gs-system").last).to_contain_text("No one from our team is online", timeout=30_000)
    expect(panel.locator(".gs-item-bot").last.locator(".gs-sources")).to_have_count(0)
    screenshot(page, "widget-knowledge-dont-know")

    # The agent reading the conversation sees the quoted answer as the customer did: its heading in bold,
    # the reply's text unchanged, its sources listed under it.
    agent = open_latest_conversation_as_agent(context, live, knowledge_shop.organization)
    quoted = agent.locator("#transcript .tmsg-bot", has=agent.locator(".tpassages li")).first
    expect(quoted.locator(".ttext strong.quote-heading").first).to_have_text("How much does shipping cost?")
    assert quoted.locator(".ttext").text_content().startswith("How much does shipping cost?\nStandard")
    expect(quoted.locator(".tpassages strong").first).to_have_text("Shipping › How much does shipping cost?")


def test_a_related_entry_under_an_answer_is_asked_with_one_tap(context, knowledge_shop, host_site):
    # Every entry found is confident enough to offer at this threshold: the answer offers the next ones.
    deployments.configure(knowledge_shop.deployment, knowledge_base=knowledge_shop.deployment.knowledge.knowledge_base,
                          policy=AnswerPolicy.QUOTE, threshold=0.0)
    page, panel, answer = ask_the_shop_about_express(context, knowledge_shop, host_site)
    offered = answer.locator(".gs-related button.gs-related-question").first
    expect(offered).to_be_visible()
    question = offered.text_content()
    assert question in {"How long does delivery take?", "What is your return policy?"}
    screenshot(page, "widget-knowledge-related")
    offered.click()
    # Sent as the customer's own message, and answered with that entry.
    expect(panel.locator(".gs-msg.gs-customer[data-seq]").last).to_have_text(question, timeout=30_000)
    expect(panel.locator(".gs-msg.gs-bot[data-seq]")).to_have_count(2, timeout=60_000)
    expect(panel.locator(".gs-item-bot").last.locator("strong.quote-heading").first).to_have_text(question)

    # Once the customer asks for a person, the bot's offers stand down: hidden, and a tap sends nothing.
    ask(panel, "I'd like to talk to a person please")
    expect(panel.locator("#gs-status")).to_have_text("Waiting for a member of our team…", timeout=30_000)
    expect(panel.locator(".gs-related").first).to_be_hidden()
    customer_messages = panel.locator(".gs-msg.gs-customer[data-seq]")
    sent_before = customer_messages.count()
    panel.locator(".gs-related button.gs-related-question").first.dispatch_event("click")
    ask(panel, "thanks, I'll wait")
    # The typed message went out after the tap over the same socket: had the tap sent, it would be here first.
    expect(customer_messages.last).to_have_text("thanks, I'll wait", timeout=30_000)
    expect(customer_messages).to_have_count(sent_before + 1)


def test_an_answer_an_agent_marks_wrong_is_not_given_again(context, knowledge_shop, host_site, live):
    """The agent's "Mark wrong" in the console keeps the quoted entries from answering that question again:
    the next customer who asks it is not given them (knowledge/feedback.py)."""
    # Every entry is confident enough at 0: what keeps a marked entry out is the mark, not the threshold.
    deployments.configure(knowledge_shop.deployment, knowledge_base=knowledge_shop.deployment.knowledge.knowledge_base,
                          policy=AnswerPolicy.QUOTE, threshold=0.0)

    def headings_of_the_answer_to(question: str) -> list[str]:
        page = context.browser.new_context().new_page()  # a new visitor each time
        page.goto(host_site.origin)
        panel = open_widget(page, knowledge_shop)
        ask(panel, question)
        headings = panel.locator(".gs-item-bot").last.locator(".gs-msg[data-seq] strong.quote-heading")
        expect(headings.first).to_be_visible(timeout=60_000)
        return headings.all_text_contents()

    wrong = headings_of_the_answer_to("Do you sell socks?")
    agent = open_latest_conversation_as_agent(context, live, knowledge_shop.organization)
    mark = agent.locator("#transcript button[data-action=mark-wrong]")
    expect(mark).to_have_count(1)
    mark.click()
    expect(mark).to_have_count(0)  # marked: the console no longer offers it

    again = headings_of_the_answer_to("do you sell socks?")
    assert again and not set(again) & set(wrong)
