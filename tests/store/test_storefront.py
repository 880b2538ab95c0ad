from django.urls import reverse

from store.catalog import sync_catalog
from store.models import FoundationModel


def test_it_lists_the_bundled_models_to_anyone(client, db):
    sync_catalog()
    page = client.get(reverse("store:home")).content.decode()
    assert "SmolLM2 135M Instruct" in page and "all-MiniLM-L6-v2" in page


def test_it_filters_by_task(client, db):
    sync_catalog()
    page = client.get(reverse("store:home"), {"task": "dialogue"}).content.decode()
    assert "SmolLM2 135M Instruct" in page and "all-MiniLM-L6-v2" not in page


def test_it_searches(client, db):
    sync_catalog()
    page = client.get(reverse("store:home"), {"q": "minilm"}).content.decode()
    assert "all-MiniLM-L6-v2" in page and "SmolLM2 135M" not in page
    assert "No model matches" in client.get(reverse("store:home"), {"q": "zzz"}).content.decode()


def test_it_answers_htmx_with_just_the_list(client, db):
    sync_catalog()
    response = client.get(reverse("store:home"), {"q": "smol"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "SmolLM2 135M Instruct" in body
    assert "<html" not in body


def test_it_shows_a_model_card_with_facts(client, db):
    sync_catalog()
    page = client.get(reverse("store:model_detail", args=["smollm2-135m-instruct"])).content.decode()
    assert "<h2>SmolLM2 135M Instruct</h2>" in page  # markdown rendered
    assert "Apache-2.0" in page and "135M" in page and "8192 tokens" in page
    assert "installed" in page


def test_it_renders_card_markdown_without_raw_html(client, db):
    FoundationModel.objects.create(
        slug="evil", display_name="Evil", family="x", architecture="BertModel", source_kind="local", source="/x",
        card_markdown="# Hi\n<script>alert(1)</script>\n[click](javascript:alert(2))",
    )
    page = client.get(reverse("store:model_detail", args=["evil"])).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page


def test_it_404s_for_an_unknown_model(client, db):
    assert client.get(reverse("store:model_detail", args=["nope"])).status_code == 404


def test_it_uses_no_external_assets(client, db):
    sync_catalog()
    page = client.get(reverse("store:home")).content.decode()
    assert "https://" not in page.replace("https://www.SBERT.net", "")
    assert "/static/django_htmx/" in page or "htmx" in page


def test_a_visitor_is_told_what_the_product_does_and_a_member_is_not(client, alice, catalog):
    page = client.get(reverse("store:home")).content.decode()
    assert 'id="what-you-get"' in page and reverse("accounts:signup") in page
    assert 'id="what-you-get"' not in alice.client.get(reverse("store:home")).content.decode()
