import pytest
from django.core.management import call_command

from store.catalog import is_available, sync_catalog
from store.models import FoundationModel

pytestmark = pytest.mark.postgres


def test_it_registers_the_bundled_models(db):
    result = sync_catalog()
    assert sorted(result.created) == ["all-minilm-l6-v2", "gpt-store-retrieval", "smollm2-135m-instruct"]
    smol = FoundationModel.objects.get(slug="smollm2-135m-instruct")
    assert smol.tasks == ["dialogue", "sentiment"]
    assert smol.bundled and smol.parameter_count == 134_515_008
    assert "SmolLM2" in smol.card_markdown
    assert FoundationModel.objects.get(slug="all-minilm-l6-v2").tasks == ["sentiment", "embedding"]
    retrieval = FoundationModel.objects.get(slug="gpt-store-retrieval")
    assert retrieval.tasks == ["embedding"] and "help centre" in retrieval.card_markdown


def test_it_is_idempotent(db):
    sync_catalog()
    before = list(FoundationModel.objects.values_list("pk", "updated_at"))
    second = sync_catalog()
    assert second.created == [] and second.updated == []
    assert list(FoundationModel.objects.values_list("pk", "updated_at")) == before


def test_it_repairs_an_edited_bundled_entry(db):
    sync_catalog()
    FoundationModel.objects.filter(slug="all-minilm-l6-v2").update(display_name="oops")
    assert sync_catalog().updated == ["all-minilm-l6-v2"]
    assert FoundationModel.objects.get(slug="all-minilm-l6-v2").display_name == "all-MiniLM-L6-v2"


def test_it_finds_the_bundled_weights_installed(db):
    sync_catalog()
    assert all(is_available(model) for model in FoundationModel.objects.all())


def test_the_command_prints_what_it_did(db, capsys):
    call_command("sync_catalog")
    call_command("sync_catalog")
    out = capsys.readouterr().out
    assert "added   smollm2-135m-instruct" in out
    assert "catalog: 0 added, 0 updated, 3 unchanged" in out
