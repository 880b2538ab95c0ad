"""The answer-from-passages recipe: rows are exactly the grounded prompt, with hard distractors."""

import json

import pytest

from finetune.answer_recipe import TooFewExamples, create_recipe_dataset, recipe_rows
from knowledge import sources
from knowledge.prompting import GROUNDED_INSTRUCTIONS, PASSAGES_CLOSE

FAQ = """# Help

## Shipping

### How much does shipping cost?
Express shipping costs $12.95.

### How long does delivery take?
Standard shipping takes 3–5 business days.

## Returns

### What is your return policy?
Unworn shoes within 30 days.

### Can I exchange sizes?
Exchanges are free.
"""


@pytest.fixture
def live_faq(alice, catalog):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Help")
    source = sources.add_text(knowledge_base, "FAQ", FAQ)
    sources.go_live(source.versions.get().pk)  # vectors are not needed to build the recipe
    return knowledge_base


def test_each_row_is_the_grounded_prompt_with_the_right_passage_among_distractors(live_faq):
    rows = recipe_rows(live_faq, system_prompt="You are Help's assistant.")
    assert len(rows) == 4
    for row in rows:
        system, user, assistant = row["messages"]
        assert system["role"] == "system" and GROUNDED_INSTRUCTIONS in system["content"]
        assert system["content"].count("<passage n=") == 3  # the answer and two distractors
        passages_block = system["content"].split("<passages>")[1].split(PASSAGES_CLOSE)[0]
        assert assistant["content"] in passages_block  # the answer is in what the model is shown
        assert user["role"] == "user" and assistant["role"] == "assistant"
    shipping = next(row for row in rows if row["messages"][1]["content"] == "How much does shipping cost?")
    assert "How long does delivery take?" in shipping["messages"][0]["content"]  # the hardest distractor


def test_customer_worded_pairs_join_when_they_name_their_entry(live_faq):
    extra = [{"question": "hw much 4 express??", "answer": "Express is $12.95.",
              "heading": "How much does shipping cost?"},
             {"question": "Do you sell socks?", "answer": "No.", "heading": "Socks"}]
    rows = recipe_rows(live_faq, extra)
    assert len(rows) == 5
    assert rows[-1]["messages"][1]["content"] == "hw much 4 express??"
    assert rows[-1]["messages"][-1]["content"] == "Express is $12.95."


def test_the_recipe_is_reproducible(live_faq):
    assert json.dumps(recipe_rows(live_faq)) == json.dumps(recipe_rows(live_faq))


def test_it_stores_a_dialogue_dataset_or_says_why_not(live_faq, alice, catalog):
    result = create_recipe_dataset(alice.organization, live_faq, user=alice.user)
    assert result.dataset is not None and result.dataset.task == "dialogue" and result.dataset.row_count == 4
    empty = sources.create_knowledge_base(alice.organization, "Empty")
    with pytest.raises(TooFewExamples):
        create_recipe_dataset(alice.organization, empty)


def test_the_page_button_creates_it_for_admins_of_the_organization_only(live_faq, alice, bob, charlie):
    assert charlie.client.post(f"/finetune/datasets/answer-recipe/{live_faq.pk}/").status_code == 404
    assert bob.client.post(f"/finetune/datasets/answer-recipe/{live_faq.pk}/").status_code == 403
    response = alice.client.post(f"/finetune/datasets/answer-recipe/{live_faq.pk}/")
    assert response.status_code == 302 and "/finetune/datasets/" in response["Location"]
