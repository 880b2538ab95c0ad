"""Token-length statistics of a dataset with a base model's tokenizer (worker-only)."""

from __future__ import annotations

import logging

from finetune.datasets import load_rows
from finetune.jobs import hyperparameters_for
from finetune.models import Dataset
from store.models import FoundationModel

logger = logging.getLogger(__name__)


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def token_lengths(tokenizer, rows: list[dict], task: str) -> list[int]:
    """Tokens per row; a retrieval pair counts its longer side (each side is read, and cut, on its own)."""
    if task == "dialogue":
        return [len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])
                for row in rows]
    if task == "embedding":
        queries = tokenizer([row["query"] for row in rows])["input_ids"]
        passages = tokenizer([row["passage"] for row in rows])["input_ids"]
        return [max(len(query), len(passage)) for query, passage in zip(queries, passages, strict=True)]
    return [len(ids) for ids in tokenizer([row["text"] for row in rows])["input_ids"]]


def compute_and_store(dataset_id: int, base_id: int) -> None:
    from workers.models.loading import load_tokenizer, model_folder

    dataset = Dataset.objects.get(pk=dataset_id)
    base = FoundationModel.objects.get(pk=base_id)
    try:
        rows = load_rows(dataset)
        lengths = sorted(token_lengths(load_tokenizer(model_folder(base)), rows, dataset.task))
        max_length = hyperparameters_for(base, dataset.task, "lora", len(rows)).max_seq_length
        stats = {
            "base": base.slug,
            "max_seq_length": max_length,
            "p50": _percentile(lengths, 0.5), "p90": _percentile(lengths, 0.9), "p95": _percentile(lengths, 0.95),
            "p99": _percentile(lengths, 0.99), "max": lengths[-1], "total": sum(lengths),
            "truncated_rows": sum(1 for n in lengths if n > max_length),
        }
        status = Dataset.TokenStatsStatus.READY
    except Exception as error:  # shown on the page; the dataset itself stays valid
        logger.exception("token statistics failed for dataset %s", dataset_id)
        stats, status = {"error": f"{error.__class__.__name__}: {error}"}, Dataset.TokenStatsStatus.FAILED
    Dataset.objects.filter(pk=dataset_id).update(token_stats=stats, token_stats_status=status,
                                                 token_stats_base=base)
    from core.broadcast import notify

    notify(f"finetune-dataset-{dataset_id}", {"type": "dataset.changed", "dataset": dataset_id})
