"""Which rows go into which batch, and how a batch becomes tensors.

"grouped" (ours) sorts rows by length inside large shuffled chunks and then shuffles the order of
the batches: every batch holds rows of similar length, so little compute is spent on padding,
while the data order stays random from epoch to epoch. "baseline" is what transformers' default
collator does with a random sampler: random batches, each padded to its own longest row.

Both derive the order from (seed, epoch) alone, never from the global RNG, so a resumed run
rebuilds the exact same batches from a cursor.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from workers.training.data import IGNORE_INDEX, Encoded, EncodedPair

TrainingRow = Encoded | EncodedPair

# Rows sorted together: large enough that neighbours have similar lengths, small enough that
# an epoch's batches still mix short and long rows from all over the dataset.
GROUP_CHUNK_BATCHES = 64


def _cut(rows: list[int], batch_size: int, even: bool) -> list[list[int]]:
    """ceil(n / batch_size) batches: full ones and a remainder, or (`even`) sizes that differ by at most one."""
    if not even:
        return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    return [part.tolist() for part in np.array_split(np.array(rows, dtype=np.int64), math.ceil(len(rows) / batch_size))]


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, mode: str,
                  even: bool = False) -> list[list[int]]:
    """Row indices per batch for one epoch; ceil(n / batch_size) batches in both modes.

    `even` evens out the batch sizes instead of leaving a small last batch: with in-batch negatives a
    batch of one row has nothing to compare with and teaches nothing.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if mode == "baseline":
        return _cut(order, batch_size, even)
    chunk = batch_size * GROUP_CHUNK_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        ordered = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(_cut(ordered, batch_size, even))
    rng.shuffle(batches)
    # The batch holding the longest row goes first so an out-of-memory error shows up at step 1,
    # not an hour into the run.
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches.insert(0, batches.pop(longest))
    return batches


def evaluation_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Length-sorted batches: evaluation sums per-token losses, so order does not change the result."""
    ordered = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def steps_per_epoch(n_rows: int, batch_size: int, gradient_accumulation: int) -> int:
    return math.ceil(math.ceil(n_rows / batch_size) / gradient_accumulation)


@dataclass
class Batch:
    """Padded token ids of a batch, and what the loss needs besides them.

    Retrieval batches of B pairs hold 2B rows, the B queries first and then their B passages, and
    `labels` is (2, B): a group id per row for its query and for its passage. Rows whose query or
    passage is the same text are both right answers to each other's query, so neither may count as
    the other's negative.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # dialogue: (B, T) with IGNORE_INDEX; sentiment: (B,); embedding: (2, B) group ids
    real_tokens: int  # non-pad tokens: what throughput is measured in
    targets: int  # labelled tokens (dialogue) or rows (sentiment, embedding): the loss denominator

    def to(self, device: str) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     self.real_tokens, self.targets)


def pad_sequences(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, ids in enumerate(sequences):
        input_ids[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, :len(ids)] = 1
    return input_ids, attention_mask


def group_ids(keys: Sequence) -> torch.Tensor:
    """The same id for equal keys: index of the key's first occurrence."""
    first: dict = {}
    return torch.tensor([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=torch.long)


def collate_pairs(rows: Sequence[EncodedPair], pad_token_id: int) -> Batch:
    input_ids, attention_mask = pad_sequences([row.query_ids for row in rows] + [row.passage_ids for row in rows],
                                              pad_token_id)
    labels = torch.stack([group_ids([tuple(row.query_ids) for row in rows]),
                          group_ids([tuple(row.passage_ids) for row in rows])])
    return Batch(input_ids, attention_mask, labels, int(attention_mask.sum()), len(rows))


def collate(rows: Sequence[TrainingRow], pad_token_id: int, task: str) -> Batch:
    """Right-padded tensors; padded label positions are IGNORE_INDEX, never the pad id."""
    if task == "embedding":
        return collate_pairs(cast(Sequence[EncodedPair], rows), pad_token_id)
    encoded = cast(Sequence[Encoded], rows)
    input_ids, attention_mask = pad_sequences([row.input_ids for row in encoded], pad_token_id)
    if task == "dialogue":
        labels = torch.full(input_ids.shape, IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(encoded):
            labels[i, :row.length] = torch.tensor(row.labels, dtype=torch.long)
        # Position 0 has no preceding token to predict it from, so it never counts.
        targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
    else:
        labels = torch.tensor([row.labels[0] for row in encoded], dtype=torch.long)
        targets = len(encoded)
    return Batch(input_ids, attention_mask, labels, int(attention_mask.sum()), targets)
