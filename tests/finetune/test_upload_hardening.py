"""Uploads and re-splits refuse what they cannot store with a clear 400, and leave no file behind."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from finetune.datasets import create_dataset
from finetune.models import Dataset
from finetune.validation import validate_dataset
from tests.finetune.conftest import sentiment_csv
from tests.finetune.test_dataset_pages import upload

HUGE_SEED = 10**30


def stored_dataset_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "datasets"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.mark.parametrize("header", [b"text,label\n", b"query,passage\n", b"text\tlabel\n", b"\xef\xbb\xbftext,label"])
def test_it_explains_a_csv_that_has_only_its_header(header):
    report = validate_dataset(header, "support.csv")
    assert not report.ok
    assert [str(p) for p in report.problems] == ["the file has a header but no rows"]


def test_it_answers_a_header_only_upload_with_400(alice):
    response = upload(alice, b"text,label\n")
    assert response.status_code == 400
    assert "the file has a header but no rows" in response.content.decode()
    assert not Dataset.objects.exists()


def test_it_refuses_a_seed_beyond_the_bound_and_keeps_no_file(alice, sentiment_dataset):
    before = stored_dataset_files()
    response = upload(alice, sentiment_csv(), seed=HUGE_SEED)
    assert response.status_code == 200  # the form comes back with the field's error
    assert "4294967295" in response.content.decode()
    assert Dataset.objects.count() == 1
    assert stored_dataset_files() == before


def test_it_refuses_a_resplit_seed_beyond_the_bound(alice, sentiment_dataset):
    response = alice.client.post(reverse("finetune:dataset_resplit", args=[sentiment_dataset.public_id]),
                                 {"train_percent": 80, "validation_percent": 10, "test_percent": 10,
                                  "seed": HUGE_SEED}, follow=True)
    assert response.status_code == 200
    sentiment_dataset.refresh_from_db()
    assert sentiment_dataset.split_seed == 42


def test_it_reports_a_seed_beyond_the_bound_as_a_problem_without_writing(alice):
    before = stored_dataset_files()
    result = create_dataset(alice.organization, sentiment_csv(), "again.csv", seed=HUGE_SEED)
    assert result.dataset is None
    assert [str(p) for p in result.report.problems] == ["seed must be between 0 and 4294967295."]
    assert stored_dataset_files() == before


def test_it_removes_the_written_file_when_saving_the_row_fails(alice, sentiment_dataset, monkeypatch):
    """Whatever fails after the file is written, the file goes with the rolled-back row."""
    before = stored_dataset_files()

    def failing_save(self, *args, **kwargs):
        raise RuntimeError("the database refused the row")

    monkeypatch.setattr(Dataset, "save", failing_save)
    with pytest.raises(RuntimeError):
        create_dataset(alice.organization, sentiment_csv(), "again.csv")
    monkeypatch.undo()
    assert Dataset.objects.count() == 1
    assert stored_dataset_files() == before


def test_splitting_refuses_a_seed_beyond_the_bound():
    from core.bounds import OutOfBounds
    from finetune.splitting import split_rows

    with pytest.raises(OutOfBounds, match="seed must be between"):
        split_rows([{"text": f"row {i}", "label": "ab"[i % 2]} for i in range(8)], seed=HUGE_SEED)
