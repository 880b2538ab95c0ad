"""A business admin tries their bot in the deployment's playground, in a real browser: the reply streams in,
with the sources it quoted and why it answered — or why it did not."""

import pytest
from playwright.sync_api import expect

from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from store.api.protocol import OUTCOME_LABELS
from tests.e2e.conftest import screenshot
from tests.factories import deploy_tiny_bot, live_user
from tests.knowledge.conftest import SMALL_FAQ
from tests.knowledge.test_live import wait_until_live

pytestmark = [pytest.mark.live, pytest.mark.browser, pytest.mark.real_model]

PASSWORD = "playground-passphrase-123"
HELP_URL = "https://playground-shoes.example/help"


@pytest.fixture
def cited_bot(live, catalog, tiny_chat_base):
    from accounts import people

    owner = live_user("pat@playground-shoes.example", PASSWORD, "Pat Owner")
    organization = people.create_organization("Playground Shoes", owner)
    knowledge_base = sources.create_knowledge_base(organization, "Help centre")  # slug help-centre
    wait_until_live(sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url=HELP_URL))
    bot = deploy_tiny_bot(organization, tiny_chat_base)
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    return owner, bot


def ask(page, text: str) -> None:
    page.fill("#pg-input", text)
    page.click("#pg-send")


def test_the_playground_shows_the_sources_of_an_answer_and_why_it_did_not_know(context, live, cited_bot):
    owner, bot = cited_bot
    page = context.new_page()
    page.goto(live.url + "/accounts/login/")
    page.fill("#id_username", owner.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto(f"{live.url}/deployments/{bot.slug}/")
    # At 1280 px the top bar holds every link, the organization and the person on one line (~47 px; 91 when
    # "Playground Shoes" and the address pushed the menu onto a second line).
    assert page.locator(".topbar").bounding_box()["height"] < 60
    expect(page.locator(".user-name")).to_have_text("Pat")
    stop = page.locator("#pg-stop")
    expect(stop).to_be_hidden()  # only while a reply streams
    # The Copy button copies the snippet of the tab shown.
    page.evaluate("navigator.clipboard.writeText = (text) => { window.copiedText = text; return Promise.resolve(); }")
    page.click("[data-tab=python]")
    page.click("#snippet-copy")
    page.wait_for_function("window.copiedText !== undefined")
    copied = page.evaluate("window.copiedText")
    assert copied.startswith("import os\nfrom openai import OpenAI") and f'model="{bot.slug}"' in copied

    ask(page, "hw much is express delivery??")
    expect(page.locator(".pg-assistant").last).to_contain_text("$12.95", timeout=60_000)
    expect(page.locator(".pg-assistant strong.quote-heading").first).to_have_text("How much does shipping cost?")
    note = page.locator(".pg-grounding").last
    expect(note).to_contain_text(f"{OUTCOME_LABELS['quoted']} (best confidence 0.")
    source = note.locator(".pg-source a").first
    expect(source).to_have_text("Shipping › How much does shipping cost?")
    expect(source).to_have_attribute("href", HELP_URL)
    expect(source).to_have_attribute("rel", "noopener noreferrer")
    expect(stop).to_be_hidden()
    expect(page.locator("#pg-send")).to_be_enabled()
    expect(page.locator("#pg-stats")).to_contain_text("nothing generated")  # a quote: no tokens/s to report
    screenshot(page, "playground-cited-answer")

    ask(page, "What year was the company founded?")
    expect(page.locator(".pg-assistant")).to_have_count(2)
    expect(page.locator(".pg-assistant").last).to_have_text(
        "I don't know that one — shall I get someone from the team?", timeout=60_000)
    expect(page.locator(".pg-grounding")).to_have_count(2)
    dont_know = page.locator(".pg-grounding").last
    expect(dont_know).to_contain_text(OUTCOME_LABELS["did_not_know"])
    expect(dont_know.locator(".pg-source")).to_have_count(0)
    expect(page.locator(".pg-related")).to_have_count(0)  # "I don't know" offers no other entries

    # At a threshold every entry clears, an answer names the entries the widget offers under it.
    deployments.configure(bot, knowledge_base=bot.knowledge.knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.0)
    ask(page, "What is your return policy?")
    expect(page.locator(".pg-grounding")).to_have_count(3, timeout=60_000)
    expect(page.locator(".pg-grounding").last.locator(".pg-related")).to_contain_text(
        "Related (offered to the customer): How")

    # A long conversation scrolls; no reply is squeezed under the next (the transcript is a flex column).
    heights = page.evaluate("""() => {
        const transcript = document.getElementById('pg-transcript');
        for (let i = 0; i < 12; i++) {
            const reply = document.createElement('div');
            reply.className = 'pg-msg pg-assistant';
            reply.textContent = 'Standard shipping takes 3–5 business days.\\n'.repeat(3);
            transcript.appendChild(reply);
        }
        return [transcript.scrollHeight > transcript.clientHeight,
                Array.from(transcript.querySelectorAll('.pg-assistant')).map(r => r.scrollHeight - r.clientHeight)];
    }""")
    assert heights[0] and max(heights[1]) <= 1, heights


    # The "ask the knowledge base" box shows the answer as the customer would see it: its heading in bold.
    page.goto(f"{live.url}/knowledge/help-centre/")
    page.fill("#id_question", "hw much is express delivery??")
    page.click("#ask-form button[type=submit]")
    expect(page.locator("#ask-reply strong.quote-heading").first).to_have_text("How much does shipping cost?",
                                                                               timeout=30_000)
    assert page.locator("#ask-reply").text_content().startswith("How much does shipping cost?\nStandard")

    # "Try a list of questions": each question's outcome, and the thresholds compared with the bot's own (0.5).
    page.fill("#id_questions", "How much is express shipping?\nWhen was the company founded?\nthanks!")
    page.click("#check-form button[type=submit]")
    rows = page.locator("#check-questions tbody tr")
    expect(rows).to_have_count(3, timeout=30_000)
    assert [rows.nth(n).get_attribute("data-outcome") for n in range(3)] == ["quoted", "did_not_know", "small_talk"]
    expect(page.locator("#check-thresholds tr.is-current")).to_have_count(2)  # the default and the bot's
    expect(page.locator("#check-thresholds tr.is-current").first).to_contain_text(bot.name)
    # A question it did not know: "Write its answer" opens the paste form with the question as its heading.
    page.locator("#check-questions a.write-answer").first.click()
    expect(page.locator("#paste_title")).to_have_value("When was the company founded?")
    assert page.locator("#paste_text").input_value().startswith("### When was the company founded?")
