"""Tuned model pages: the card, the PEFT download, merge and export, publishing, deleting."""

import io
import zipfile

import pytest
from django.urls import reverse

from store.models import TunedModel
from store.tuned import artifact_folder
from tests.factories import train_tiny_sentiment


@pytest.fixture
def lora_moods(alice, tiny_encoder_base):
    return train_tiny_sentiment(alice.organization, tiny_encoder_base, method="lora")


def download(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    return b"".join(response.streaming_content)


def test_the_owner_sees_the_card_and_the_evaluation(alice, lora_moods):
    page = alice.client.get(reverse("store:tuned_detail", args=[lora_moods.short_id])).content.decode()
    assert lora_moods.openai_id in page and "Evaluation details" in page and "Confusion matrix" in page
    # The accuracy table is the model card's; the details below it add the confusion matrix, not a second copy.
    assert page.count("macro-F1") == 1 and "Macro-F1" not in page
    assert "Download adapter (.zip)" in page


def test_a_full_fine_tune_offers_its_whole_model_not_an_adapter(alice, tiny_encoder_base):
    full = train_tiny_sentiment(alice.organization, tiny_encoder_base, method="full")
    page = alice.client.get(reverse("store:tuned_detail", args=[full.short_id])).content.decode()
    assert "Download model (.zip)" in page and "Download adapter" not in page


def test_the_adapter_download_is_a_peft_folder_that_plain_peft_loads(alice, lora_moods, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = download(alice.client, reverse("store:tuned_download", args=[lora_moods.short_id]))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(tmp_path)
    folder = next(tmp_path.iterdir())
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    base = AutoModelForSequenceClassification.from_pretrained(lora_moods.base.source, num_labels=3)
    model = PeftModel.from_pretrained(base, folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(["Love these boots"], return_tensors="pt")).logits
    assert logits.shape == (1, 3)


def test_merge_and_export_gives_a_full_model(alice, lora_moods, django_capture_on_commit_callbacks):
    response = alice.client.post(reverse("store:tuned_merge", args=[lora_moods.short_id]))
    assert response.status_code == 302  # the (eager, in tests) worker task merged it
    lora_moods.refresh_from_db()
    assert lora_moods.merged_status == "ready", lora_moods.merged_error
    assert (artifact_folder(lora_moods) / "merged" / "config.json").exists()
    data = download(alice.client, reverse("store:tuned_merged_download", args=[lora_moods.short_id]))
    assert any(name.endswith("model.safetensors") for name in zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_a_private_model_is_invisible_to_outsiders_until_published(alice, charlie, client, lora_moods):
    url = reverse("store:tuned_detail", args=[lora_moods.short_id])
    assert charlie.client.get(url).status_code == 404 and client.get(url).status_code == 404
    assert charlie.client.get(reverse("store:tuned_download", args=[lora_moods.short_id])).status_code == 404
    alice.client.post(reverse("store:tuned_publish", args=[lora_moods.short_id]), {"published": "1"})
    assert client.get(url).status_code == 200
    assert lora_moods.name in client.get(reverse("store:home")).content.decode()
    # published is not shared: downloads and management stay with the owner
    assert charlie.client.get(reverse("store:tuned_download", args=[lora_moods.short_id])).status_code == 404
    assert charlie.client.post(reverse("store:tuned_delete", args=[lora_moods.short_id])).status_code == 404


def test_deleting_removes_the_weights(alice, lora_moods, django_capture_on_commit_callbacks):
    folder = artifact_folder(lora_moods)
    assert folder.exists()
    with django_capture_on_commit_callbacks(execute=True):
        alice.client.post(reverse("store:tuned_delete", args=[lora_moods.short_id]))
    assert not TunedModel.objects.filter(pk=lora_moods.pk).exists()
    assert not folder.exists()
