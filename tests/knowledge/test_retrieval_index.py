"""The worker's retrieval index: held with its passages under a key the web process reads, so a customer's
turn reads nothing from the database, never uses another knowledge base's index, and never cites a stale link.

The real worker code on a real engine (the tiny encoder)."""

import pytest

from knowledge import sources, worker
from knowledge.models import KnowledgeSource
from tests.knowledge.conftest import SMALL_FAQ, embed_live

pytestmark = [pytest.mark.django_db(transaction=True)]


def ask(knowledge_base, question: str, engine, index_key: str | None = None) -> dict:
    knowledge_base.refresh_from_db()
    return worker.retrieve({"knowledge_base": knowledge_base.pk, "queries": [question], "k": 3,
                            "index": knowledge_base.index_key if index_key is None else index_key}, engine)


def change_form_data(response) -> dict:
    """What the admin's change form posts back unchanged: its fields and its inlines' management forms."""
    form = response.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if name in form.fields and value is not None}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{name}": value for name, value in formset.management_form.initial.items()})
        for child in formset.forms:
            data.update({child.add_prefix(name): value for name, value in child.initial.items()
                         if name in child.fields and value is not None})
            data[child.add_prefix(formset.model._meta.pk.name)] = child.instance.pk
    return data


@pytest.fixture
def faq(tiny_knowledge_base, encoder_engine):
    source = sources.add_text(tiny_knowledge_base, "FAQ", SMALL_FAQ, url="https://alice.example/help")
    embed_live(tiny_knowledge_base, encoder_engine)
    return source


def test_a_held_index_answers_a_turn_without_reading_the_database(tiny_knowledge_base, encoder_engine, faq,
                                                                  django_assert_num_queries):
    first = ask(tiny_knowledge_base, "How much is express shipping?", encoder_engine)  # builds and holds it
    assert first["candidates"] and first["revision"] == tiny_knowledge_base.revision
    with django_assert_num_queries(0):
        again = worker.retrieve({"knowledge_base": tiny_knowledge_base.pk, "index": tiny_knowledge_base.index_key,
                                 "queries": ["How much is express shipping?"], "k": 3}, encoder_engine)
    assert again["candidates"] == first["candidates"]
    assert {c["url"] for c in again["candidates"]} == {"https://alice.example/help"}
    assert {c["text"] for c in again["candidates"]} <= {p.text for p in sources.live_passages(tiny_knowledge_base)}


def test_a_new_revision_is_never_answered_from_the_old_index(tiny_knowledge_base, encoder_engine, faq):
    ask(tiny_knowledge_base, "How much is express shipping?", encoder_engine)
    sources.revise_text(faq, SMALL_FAQ.replace("$12.95", "$14.95"))
    embed_live(tiny_knowledge_base, encoder_engine)
    found = ask(tiny_knowledge_base, "How much is express shipping?", encoder_engine)
    texts = " ".join(c["text"] for c in found["candidates"])
    assert "$14.95" in texts and "$12.95" not in texts


def test_another_knowledge_bases_index_key_is_not_used(tiny_knowledge_base, encoder_engine, faq, charlie,
                                                       tiny_encoder_base):
    """A payload naming another organization's index (a bug, a forged message) still searches only the
    knowledge base it names."""
    other = sources.create_knowledge_base(charlie.organization, "Charlie help", embedding_model=tiny_encoder_base)
    sources.add_text(other, "Secrets", "## Vault\nThe vault code is 4471 and only Charlie knows it.")
    embed_live(other, encoder_engine)
    ask(other, "What is the vault code?", encoder_engine)  # Charlie's index is now held
    other.refresh_from_db()
    found = ask(tiny_knowledge_base, "What is the vault code?", encoder_engine, index_key=other.index_key)
    assert found["candidates"] and all("4471" not in c["text"] for c in found["candidates"])
    assert {c["source_id"] for c in found["candidates"]} == {faq.pk}


def test_relinking_a_source_in_the_admin_makes_the_next_answer_cite_the_new_link(tiny_knowledge_base, encoder_engine,
                                                                                 faq, alice):
    assert {c["url"] for c in ask(tiny_knowledge_base, "shipping", encoder_engine)["candidates"]} == \
        {"https://alice.example/help"}
    revision = tiny_knowledge_base.revision
    page = f"/admin/knowledge/knowledgesource/{faq.pk}/change/"
    # Typed without its scheme, as people paste links: https is assumed (accounts/admin_scoping.py).
    response = alice.client.post(page, {**change_form_data(alice.client.get(page)), "url": "alice.example/faq"})
    assert response.status_code == 302
    assert KnowledgeSource.objects.get(pk=faq.pk).url == "https://alice.example/faq"
    found = ask(tiny_knowledge_base, "shipping", encoder_engine)
    assert tiny_knowledge_base.revision == revision + 1
    assert {c["url"] for c in found["candidates"]} == {"https://alice.example/faq"}
