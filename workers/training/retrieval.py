"""Sentence embeddings, the in-batch-negatives loss, and retrieval metrics.

The pooling is the serving engine's own function (workers/models/pooling.py: `mean_pool`): the
mean of the last hidden states over real tokens, then L2 normalisation — what sentence-transformers
computes for all-MiniLM-L6-v2. A model is evaluated exactly as it will be served.

The loss is sentence-transformers' MultipleNegativesRankingLoss: each query should be closer (by
cosine similarity, times a scale of 20) to its own passage than to every other passage of the batch,
as a cross-entropy over the batch. A passage that appears twice in a batch, or a query asked twice
with two answers, is a right answer for both rows: it is left out of the other row's negatives
instead of being pushed away from a query it answers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

from workers.models.pooling import mean_pool
from workers.training.batching import Batch

SIMILARITY_SCALE = 20.0


def sentence_embeddings(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit vectors of a padded batch; columns that are padding in every row are not computed."""
    width = max(1, int(attention_mask.sum(dim=1).max()))
    input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return mean_pool(hidden, attention_mask)


def shared_answers(query_groups: torch.Tensor, passage_groups: torch.Tensor) -> torch.Tensor:
    """(B, B) True where row j's passage is also a right answer for row i's query (the diagonal included)."""
    same_query = query_groups.unsqueeze(1) == query_groups.unsqueeze(0)
    same_passage = passage_groups.unsqueeze(1) == passage_groups.unsqueeze(0)
    return same_query | same_passage


def in_batch_negatives_loss(queries: torch.Tensor, passages: torch.Tensor, answers: torch.Tensor | None = None,
                            scale: float = SIMILARITY_SCALE) -> torch.Tensor:
    """Sum over queries of the cross-entropy of (scale x cosine) against every passage of the batch.

    `queries` and `passages` are unit vectors, row i's passage answering row i's query; `answers`
    (B, B) marks further right answers (see `shared_answers`), which are not negatives. A sum, not a
    mean, so accumulated micro-batches weigh each query equally.
    """
    scores = scale * queries @ passages.T
    if answers is not None:
        others = answers & ~torch.eye(len(queries), dtype=torch.bool, device=answers.device)
        scores = scores.masked_fill(others, float("-inf"))
    targets = torch.arange(len(queries), device=queries.device)
    return F.cross_entropy(scores, targets, reduction="sum")


def pair_loss_sum(model, batch: Batch) -> torch.Tensor:
    """The loss of a retrieval batch (queries in the first half of its rows, passages in the second)."""
    size = batch.targets
    queries = sentence_embeddings(model, batch.input_ids[:size], batch.attention_mask[:size])
    passages = sentence_embeddings(model, batch.input_ids[size:], batch.attention_mask[size:])
    return in_batch_negatives_loss(queries, passages, shared_answers(batch.labels[0], batch.labels[1]))


def retrieval_task(queries: Sequence[Hashable],
                   pool: Sequence[tuple[Hashable, Hashable]]) -> tuple[list, list, list[set[int]]]:
    """What a retrieval evaluation asks: the distinct `queries` (in order), the distinct passages of the
    (query, passage) `pool`, and for each query the positions of every pool passage paired with it.
    Every query must occur in the pool."""
    passages = list(dict.fromkeys(passage for _, passage in pool))
    column = {passage: i for i, passage in enumerate(passages)}
    answers: dict[Hashable, set[int]] = {}
    for query, passage in pool:
        answers.setdefault(query, set()).add(column[passage])
    distinct = list(dict.fromkeys(queries))
    return distinct, passages, [answers[query] for query in distinct]


def answer_ranks(queries: torch.Tensor, passages: torch.Tensor, relevant: Sequence[set[int]],
                 chunk: int = 256) -> tuple[list[int], list[int]]:
    """For each query (unit vectors against unit vectors): the 1-based rank of its best-placed right
    passage, and its most similar passage. Scored `chunk` queries at a time, never a full sort, so a
    large pool needs no (queries x passages) index matrix."""
    ranks: list[int] = []
    tops: list[int] = []
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ passages.T
        tops.extend(scores.argmax(dim=1).tolist())
        for row, answers in zip(scores, relevant[start:start + chunk], strict=True):
            best = row[sorted(answers)].max()
            ranks.append(1 + int((row > best).sum()))
    return ranks, tops


def retrieval_metrics(ranks: Sequence[int], ks: Sequence[int] = (1, 3)) -> dict:
    """Recall@k (the share of queries with a right passage in their top k) and the mean reciprocal rank
    of each query's first right passage."""
    count = len(ranks)
    metrics: dict = {f"recall_at_{k}": sum(rank <= k for rank in ranks) / count if count else 0.0 for k in ks}
    metrics["mrr"] = sum(1 / rank for rank in ranks) / count if count else 0.0
    metrics["queries"] = count
    return metrics
