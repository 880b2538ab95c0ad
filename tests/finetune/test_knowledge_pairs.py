"""Retrieval pairs from a knowledge base's live passages, and the page action that stores them as a dataset."""

from __future__ import annotations

import pytest
from django.urls import reverse

from finetune.knowledge_pairs import heading_question, pairs_from_knowledge
from finetune.models import Dataset
from knowledge.chunking import embedding_text
from knowledge.sources import add_file, add_text, create_knowledge_base, go_live, live_passages

HELP_CENTRE = """# Acme help

## Shipping

### How much does shipping cost?

Standard shipping is $5, free over $50.

### Do you ship to Canada?

Yes, to the US and Canada.

## Returns

### How long do I have to return shoes?

30 days, unworn, in the original box.
"""

QA_CSV = b"""question,answer
Which cards do you take?,"Visa, Mastercard and PayPal."
Do gift cards expire?,"No, never."
"""


def make_live(source) -> None:
    go_live(source.versions.get().pk)


@pytest.fixture
def knowledge_base(catalog, alice):
    return create_knowledge_base(alice.organization, "FAQ")


@pytest.fixture
def faq(knowledge_base):
    """Three document passages and two Q&A pairs, all live."""
    make_live(add_text(knowledge_base, "Help centre", HELP_CENTRE))
    make_live(add_file(knowledge_base, QA_CSV, "cards.csv"))
    return knowledge_base


def test_it_pairs_document_headings_and_faq_questions_with_the_text_the_knowledge_base_embeds(faq):
    pairs = pairs_from_knowledge(faq)
    expected = {(passage.question or passage.title.split(" › ")[-1],
                 embedding_text(passage.title, passage.text, passage.question)) for passage in live_passages(faq)}
    assert {(pair["query"], pair["passage"]) for pair in pairs} == expected
    queries = [pair["query"] for pair in pairs]
    assert queries == ["How much does shipping cost?", "Do you ship to Canada?", "How long do I have to return shoes?",
                       "Which cards do you take?", "Do gift cards expire?"]  # by source title, then position
    shipping = pairs[0]
    assert shipping["passage"] == "Shipping › How much does shipping cost?\nStandard shipping is $5, free over $50."


def test_it_leaves_out_passages_that_are_not_live(knowledge_base):
    add_text(knowledge_base, "Draft", HELP_CENTRE)  # parsed, not live yet
    assert pairs_from_knowledge(knowledge_base) == []


def test_it_asks_a_long_section_by_its_heading_without_the_window_counter():
    assert heading_question("Returns › How do refunds work? (2/3)") == "How do refunds work?"
    assert heading_question("Shipping › How much does shipping cost?") == "How much does shipping cost?"


def test_it_stores_the_pairs_as_an_embedding_dataset(alice, faq):
    response = alice.client.post(reverse("finetune:dataset_from_knowledge", args=[faq.pk]))
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("finetune:dataset_detail", args=[dataset.public_id])
    assert (dataset.task, dataset.name, dataset.row_count) == ("embedding", "FAQ — retrieval pairs", 5)
    assert dataset.organization == alice.organization and dataset.stats["distinct_passages"] == 5
    page = alice.client.get(response["Location"]).content.decode()
    assert "Which cards do you take?" in page


def test_it_explains_when_there_are_too_few_pairs(alice, knowledge_base):
    make_live(add_file(knowledge_base, QA_CSV, "cards.csv"))
    response = alice.client.post(reverse("finetune:dataset_from_knowledge", args=[knowledge_base.pk]), follow=True)
    assert "FAQ has 2 live question–passage pairs; at least 4 are needed" in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_offers_the_knowledge_bases_on_the_upload_page(alice, faq):
    page = alice.client.get(reverse("finetune:dataset_upload")).content.decode()
    assert reverse("finetune:dataset_from_knowledge", args=[faq.pk]) in page
    # and the dialogue recipe made from the same knowledge base
    assert reverse("finetune:answer_recipe_from_knowledge", args=[faq.pk]) in page


def test_it_keeps_agents_out(bob, faq):
    assert bob.client.post(reverse("finetune:dataset_from_knowledge", args=[faq.pk])).status_code == 403
    assert not Dataset.objects.exists()


def test_it_hides_another_organization_s_knowledge_base(charlie, faq):
    assert charlie.client.post(reverse("finetune:dataset_from_knowledge", args=[faq.pk])).status_code == 404
    assert not Dataset.objects.exists()


def test_it_only_accepts_post(alice, faq):
    assert alice.client.get(reverse("finetune:dataset_from_knowledge", args=[faq.pk])).status_code == 405
