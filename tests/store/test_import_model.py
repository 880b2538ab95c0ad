import pytest
from django.core.management import CommandError, call_command

from store.catalog import CatalogError, import_model
from store.models import FoundationModel, SourceKind


def test_it_imports_a_local_chat_model_folder(db, tiny_chat_folder, capsys):
    call_command("import_model", str(tiny_chat_folder), "--slug", "tiny")
    model = FoundationModel.objects.get(slug="tiny")
    assert model.source_kind == SourceKind.LOCAL
    assert model.architecture == "LlamaForCausalLM"
    assert model.tasks == ["dialogue", "sentiment"]
    assert model.license == "mit"
    assert model.context_length == 512
    import torch  # noqa: F401 - the count must equal the real one
    from transformers import AutoModelForCausalLM

    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_chat_folder).parameters())
    assert model.parameter_count == real
    assert capsys.readouterr().out.strip().splitlines()[-1] == "tiny"


def test_it_imports_an_encoder_for_sentiment_and_embeddings(db, tiny_encoder_folder):
    model = import_model(str(tiny_encoder_folder))
    assert model.tasks == ["sentiment", "embedding"]
    assert model.family == "bert"


def test_it_updates_instead_of_duplicating_on_reimport(db, tiny_encoder_folder):
    first = import_model(str(tiny_encoder_folder))
    second = import_model(str(tiny_encoder_folder))
    assert first.pk == second.pk
    assert FoundationModel.objects.filter(source=str(tiny_encoder_folder)).count() == 1


def test_it_fails_clearly_when_the_hub_is_unreachable(db, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(CommandError, match="Cannot fetch 'someorg/some-model'.*import the folder"):
        call_command("import_model", "someorg/some-model")
    assert not FoundationModel.objects.filter(source="someorg/some-model").exists()


def test_it_refuses_a_folder_that_is_not_a_model(db, tmp_path):
    with pytest.raises(CatalogError, match="no config.json"):
        import_model(str(tmp_path))


def test_it_refuses_pickled_weights(db, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CatalogError, match="never loads pickled"):
        import_model(str(tmp_path))


def test_it_refuses_a_nonsense_reference(db):
    with pytest.raises(CatalogError, match="neither an existing folder nor a hub id"):
        import_model("./does/not/exist")
