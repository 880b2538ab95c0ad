from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from finetune.models import Dataset
from tests.finetune.conftest import sentiment_csv

UPLOAD = reverse("finetune:dataset_upload")


def upload(person, data: bytes, name="support.csv", **fields):
    form = {"train_percent": 80, "validation_percent": 10, "test_percent": 10, "seed": 42, **fields,
            "file": SimpleUploadedFile(name, data)}
    return person.client.post(UPLOAD, form)


def test_it_stores_a_valid_file_and_shows_its_stats(alice, tmp_path):
    response = upload(alice, sentiment_csv())
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("finetune:dataset_detail", args=[dataset.public_id])
    assert dataset.organization == alice.organization and dataset.row_count == 12
    page = alice.client.get(response["Location"]).content.decode()
    assert "Where is my parcel?" in page  # preview
    assert "stratified by label" in page
    assert dataset.file.storage.exists(dataset.file.name)


def test_it_stores_nothing_for_an_invalid_file_and_lists_every_problem(alice):
    bad = sentiment_csv() + b'"no label here",\n"single",lonely\n'
    response = upload(alice, bad)
    assert response.status_code == 400
    page = response.content.decode()
    assert "The file was not stored." in page
    assert "line 14: empty label" in page
    assert "line 15: label &#x27;lonely&#x27; has only 1 example" in page
    assert not Dataset.objects.exists()


@override_settings(DATASET_MAX_BYTES=200)
def test_it_refuses_an_oversized_upload_before_reading_it(alice):
    response = upload(alice, sentiment_csv(repeat=3))
    assert response.status_code == 413
    assert "the limit is" in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_checks_the_split_percentages(alice):
    response = upload(alice, sentiment_csv(), train_percent=50)
    assert response.status_code == 200
    assert "must add up to 100%" in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_keeps_agents_out_of_fine_tuning(bob):
    assert bob.client.get(reverse("finetune:index")).status_code == 403
    assert upload(bob, sentiment_csv()).status_code == 403
    assert not Dataset.objects.exists()


def test_it_hides_datasets_from_other_organizations(alice, charlie_dataset):
    assert alice.client.get(reverse("finetune:dataset_detail", args=[charlie_dataset.public_id])).status_code == 404
    assert alice.client.post(reverse("finetune:dataset_delete", args=[charlie_dataset.public_id])).status_code == 404
    assert "Charlie secrets" not in alice.client.get(reverse("finetune:index")).content.decode()
    assert Dataset.objects.filter(pk=charlie_dataset.pk).exists()


def test_it_resplits_with_new_ratios(alice, sentiment_dataset):
    url = reverse("finetune:dataset_resplit", args=[sentiment_dataset.public_id])
    alice.client.post(url, {"train_percent": 50, "validation_percent": 25, "test_percent": 25, "seed": 3})
    sentiment_dataset.refresh_from_db()
    assert sentiment_dataset.split_seed == 3
    assert sentiment_dataset.stats["split_sizes"]["train"] == 6


def test_it_deletes_a_dataset_with_its_file(alice, sentiment_dataset, django_capture_on_commit_callbacks):
    storage, name = sentiment_dataset.file.storage, sentiment_dataset.file.name
    assert storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client.post(reverse("finetune:dataset_delete", args=[sentiment_dataset.public_id]))
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=sentiment_dataset.pk).exists()
    assert not storage.exists(name)


def test_it_requests_token_statistics_from_a_worker(alice, sentiment_dataset, tiny_encoder_base,
                                                     django_capture_on_commit_callbacks):
    url = reverse("finetune:dataset_token_stats", args=[sentiment_dataset.public_id])
    with django_capture_on_commit_callbacks(execute=True):
        alice.client.post(url, {"base": tiny_encoder_base.slug})
    sentiment_dataset.refresh_from_db()
    assert sentiment_dataset.token_stats_status == "ready"  # eager Celery ran the worker task
    assert sentiment_dataset.token_stats["max"] >= sentiment_dataset.token_stats["p50"] > 3
    page = alice.client.get(reverse("finetune:dataset_detail", args=[sentiment_dataset.public_id])).content.decode()
    assert "Truncated at" in page


PAIRS = b"".join(b'{"query": "question %d about parcels?", "passage": "Answer %d: parcels ship in %d days."}\n'
                 % (i, i, i + 1) for i in range(6))


def test_it_stores_retrieval_pairs_and_shows_them_side_by_side(alice):
    response = upload(alice, PAIRS, name="pairs.jsonl")
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and (dataset.task, dataset.row_count) == ("embedding", 6)
    page = alice.client.get(response["Location"]).content.decode()
    assert "<th>Query</th><th>Passage</th>" in page and "Answer 3: parcels ship in 4 days." in page
    assert "Distinct passages / questions" in page and "questions about the same passage" in page


def test_it_counts_the_tokens_of_the_longer_side_of_each_pair(alice, tiny_encoder_base, tiny_encoder_folder,
                                                             django_capture_on_commit_callbacks):
    from transformers import AutoTokenizer

    upload(alice, PAIRS, name="pairs.jsonl")
    dataset = Dataset.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        alice.client.post(reverse("finetune:dataset_token_stats", args=[dataset.public_id]),
                          {"base": tiny_encoder_base.slug})
    dataset.refresh_from_db()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_folder)
    longest = len(tokenizer("Answer 5: parcels ship in 6 days.")["input_ids"])
    assert dataset.token_stats_status == "ready" and dataset.token_stats["max"] == longest
    assert dataset.token_stats["max_seq_length"] == 256
