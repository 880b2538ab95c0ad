"""Datasets: create from an uploaded file (validated first, stored only if valid), re-split, delete."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.db import transaction

from accounts.models import Organization
from core.bounds import SEED
from core.queue import send_task
from finetune.models import Dataset
from finetune.splitting import DEFAULT_RATIOS, check_ratios, split_rows
from finetune.validation import ValidationReport, validate_dataset
from store.models import FoundationModel


@dataclass
class DatasetResult:
    dataset: Dataset | None
    report: ValidationReport


def create_dataset(organization: Organization, data: bytes, filename: str, name: str = "", task: str | None = None,
                   user=None, ratios=DEFAULT_RATIOS, seed: int = 42,
                   token_stats_base: FoundationModel | None = None) -> DatasetResult:
    """Validate the whole file; store it only if it is valid. Never raises on bad data."""
    report = validate_dataset(data, filename, task)
    for problem in _split_problems(ratios, seed):
        report.add(None, problem)
    if not report.ok:
        return DatasetResult(None, report)
    assert report.task is not None and report.file_format is not None  # a valid report knows both
    splits = split_rows(report.rows, ratios, seed)
    stats = {**report.stats, "warnings": report.warnings,
             "split_sizes": {part: len(indices) for part, indices in splits.items()}}
    dataset = Dataset(
        organization=organization, name=(name or filename)[:120], task=report.task, file_format=report.file_format,
        original_filename=filename[:255], size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        row_count=len(report.rows), stats=stats, preview=report.preview, labels=report.labels,
        split_seed=seed, split_ratios=list(ratios), splits=splits, created_by=user,
    )
    try:
        with transaction.atomic():
            dataset.file.save(f"{dataset.public_id}.{report.file_format}", ContentFile(data), save=False)
            dataset.save()
            if token_stats_base is not None:
                request_token_stats(dataset, token_stats_base)
    except BaseException:
        # The row was rolled back; without this the file would stay on disk with nothing pointing at it.
        if dataset.file.name:
            dataset.file.storage.delete(dataset.file.name)
        raise
    return DatasetResult(dataset, report)


def _split_problems(ratios, seed) -> list[str]:
    """Why (ratios, seed) cannot split a dataset; checked before anything is written."""
    return check_ratios(ratios) + ([] if SEED.contains(seed) and isinstance(seed, int) else [SEED.message()])


def load_rows(dataset: Dataset) -> list[dict]:
    """The validated rows, re-read from the stored file (which only ever holds a valid file)."""
    with dataset.file.open("rb") as handle:
        data = handle.read()
    report = validate_dataset(data, dataset.original_filename, dataset.task)
    if not report.ok:
        raise ValueError(f"stored dataset {dataset.pk} no longer validates: {report.problems[0]}")
    return report.rows


def resplit(dataset: Dataset, ratios, seed: int) -> list[str]:
    errors = _split_problems(ratios, seed)
    if errors:
        return errors
    splits = split_rows(load_rows(dataset), ratios, seed)
    dataset.split_ratios, dataset.split_seed, dataset.splits = list(ratios), seed, splits
    dataset.stats = {**dataset.stats, "split_sizes": {part: len(indices) for part, indices in splits.items()}}
    dataset.save(update_fields=["split_ratios", "split_seed", "splits", "stats"])
    return []


def rows_of_split(dataset: Dataset, part: str) -> list[dict]:
    rows = load_rows(dataset)
    return [rows[i] for i in dataset.splits[part]]


def request_token_stats(dataset: Dataset, base: FoundationModel) -> None:
    """Token lengths need the base model's tokenizer, so a worker computes them."""
    Dataset.objects.filter(pk=dataset.pk).update(
        token_stats_base=base, token_stats_status=Dataset.TokenStatsStatus.PENDING
    )
    # By name: finetune.tasks' bodies import worker code (core/queue.py).
    transaction.on_commit(lambda: send_task("finetune.tasks.compute_token_stats", dataset.pk, base.pk))


def delete_dataset(dataset: Dataset) -> None:
    """Refused (ProtectedError) while a job uses it; the file goes with the row."""
    storage, path = dataset.file.storage, str(dataset.file.name)
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: storage.delete(path))

