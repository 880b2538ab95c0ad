"""Trying a list of questions on a knowledge base: the form's bounds, and the real retrieval (GPT Store
Retrieval on Acme's help centre) deciding each question at every threshold the page compares."""

import re

import pytest

from knowledge import deployments, sources
from knowledge.forms import MAX_CHECKED_QUESTIONS, MAX_QUESTION_CHARS, QuestionListForm
from knowledge.models import AnswerPolicy
from store import deploy
from store.inference.client import InferenceUnavailable
from tests.knowledge.conftest import ACME_FAQ, embed_live


def cleaned(text: str):
    form = QuestionListForm({"questions": text})
    return form.cleaned_data["questions"] if form.is_valid() else form.errors["questions"]


def test_each_line_is_a_question_once():
    assert cleaned("How much is express?\n\n  Do you ship to Canada?  \nHow much is express?\n") == [
        "How much is express?", "Do you ship to Canada?"]


@pytest.mark.parametrize(("text", "error"), [
    ("\n  \n", "Paste at least one question, one per line."),
    ("\n".join(f"Question {n}?" for n in range(MAX_CHECKED_QUESTIONS + 1)),
     f"At most {MAX_CHECKED_QUESTIONS} questions at a time: this list has {MAX_CHECKED_QUESTIONS + 1}."),
    (f"Fine?\nAlso fine?\n{'x' * (MAX_QUESTION_CHARS + 1)}", f"Line 3 is longer than {MAX_QUESTION_CHARS} characters."),
])
def test_a_list_it_cannot_check_is_refused_with_the_reason(text, error):
    assert cleaned(text) == [error]


def _rows(html: str) -> list[tuple[str, str]]:
    """(outcome, question) of each row of the questions table."""
    table = html.split('id="check-questions"')[1]
    return re.findall(r'<tr data-outcome="(\w+)">\s*<td>([^<]*)', table)


def _threshold_rows(html: str) -> dict[str, list[str]]:
    table = html.split('id="check-thresholds"')[1].split("</table>")[0]
    return {cells[0]: cells[1:] for cells in
            (re.findall(r"<td>([^<]*)</td>", row) for row in table.split("<tr")[2:])}


@pytest.mark.django_db(transaction=True)
def test_each_question_is_decided_as_a_customers_and_each_threshold_counted(alice, knowledge_base, worker_retrieval,
                                                                            tiny_chat_base):
    sources.add_file(knowledge_base, ACME_FAQ.read_bytes(), ACME_FAQ.name)
    embed_live(knowledge_base, worker_retrieval)
    bot = deploy.create_or_update(alice.organization, "shop-bot", deploy.ModelChoice(base=tiny_chat_base),
                                  name="Shop bot")
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.55)

    page = alice.client.post(f"/knowledge/{knowledge_base.slug}/check/", {"questions": "\n".join([
        "How much is express shipping?", "What year was Acme Shoes founded?", "thanks!", "ur retrun policy pls",
        "How much is express shipping?", "Who owns Acme Shoes?"])})

    assert page.status_code == 200
    html = page.content.decode()
    assert _rows(html) == [("quoted", "How much is express shipping?"),
                           ("did_not_know", "What year was Acme Shoes founded?"),
                           ("small_talk", "thanks!"), ("quoted", "ur retrun policy pls"),
                           ("did_not_know", "Who owns Acme Shoes?")]
    assert "Shipping and delivery › How much does shipping cost?" in html
    # Why it did not know who owns the shop: the introduction matched, but says nothing of its owners.
    assert "It asks for a person; the entries found state none." in html
    # Each question it did not know links to the paste form, opened with the question as a heading.
    assert re.findall(r'class="write-answer" href="([^"]+)"', html) == [
        f"/knowledge/{knowledge_base.slug}/?answer=What%20year%20was%20Acme%20Shoes%20founded%3F#paste-form",
        f"/knowledge/{knowledge_base.slug}/?answer=Who%20owns%20Acme%20Shoes%3F#paste-form"]
    assert "Searched as “your return policy please”" in html
    thresholds = _threshold_rows(html)
    assert list(thresholds) == ["0.40", "0.50", "0.55", "0.60", "0.70"]  # the deployment's own among them
    assert thresholds["0.60"] == ["2", "0", "2", "default"]  # answered, not sure, "I don't know"
    assert thresholds["0.55"][-1] == "Shop bot"
    for answered, not_sure, dont_know, _ in thresholds.values():
        assert int(answered) + int(not_sure) + int(dont_know) == 4  # small talk is counted in none


@pytest.mark.django_db(transaction=True)
def test_another_organization_cannot_check_questions_on_it(alice, charlie, knowledge_base, worker_retrieval):
    page = charlie.client.post(f"/knowledge/{knowledge_base.slug}/check/", {"questions": "Do you ship to Canada?"})
    assert page.status_code == 404


@pytest.mark.django_db
def test_a_bad_list_answers_400_with_the_reason(alice, knowledge_base):
    page = alice.client.post(f"/knowledge/{knowledge_base.slug}/check/", {"questions": "   "})
    assert page.status_code == 400
    assert "Paste at least one question, one per line." in page.content.decode()


@pytest.mark.django_db
def test_no_inference_worker_answers_503_with_a_clear_message(alice, knowledge_base, monkeypatch):
    async def no_worker(task, payload):
        raise InferenceUnavailable("No inference worker is running.")

    monkeypatch.setattr("knowledge.client.call_worker", no_worker)
    page = alice.client.post(f"/knowledge/{knowledge_base.slug}/check/", {"questions": "Do you ship to Canada?"})
    assert page.status_code == 503
    assert 'role="alert"' in page.content.decode() and "Traceback" not in page.content.decode()


@pytest.mark.django_db
def test_a_question_it_did_not_know_opens_the_paste_form_with_it_as_a_heading(alice, knowledge_base):
    page = alice.client.get(f"/knowledge/{knowledge_base.slug}/", {"answer": "  Do you have a\nstudent discount? "})
    assert page.status_code == 200
    form = page.content.decode().split('id="paste-form"')[1].split("</form>")[0]
    assert 'value="Do you have a student discount?"' in form  # the source's title
    assert "### Do you have a student discount?\n\n</textarea>" in form  # the entry's heading, its answer to write
    plain = alice.client.get(f"/knowledge/{knowledge_base.slug}/").content.decode()
    assert "### " not in plain.split('id="paste-form"')[1].split("</form>")[0]  # an empty form otherwise
