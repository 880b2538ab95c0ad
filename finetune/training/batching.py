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

import torch

from finetune.training.data import IGNORE_INDEX, Encoded

# Rows sorted together: large enough that neighbours have similar lengths, small enough that
# an epoch's batches still mix short and long rows from all over the dataset.
GROUP_CHUNK_BATCHES = 64


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, mode: str) -> list[list[int]]:
    """Row indices per batch for one epoch; ceil(n / batch_size) batches in both modes."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if mode == "baseline":
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * GROUP_CHUNK_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        ordered = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size))
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
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # dialogue: (B, T) with IGNORE_INDEX; sentiment: (B,)
    real_tokens: int  # non-pad tokens: what throughput is measured in
    targets: int  # labelled tokens (dialogue) or rows (sentiment): the loss denominator

    def to(self, device: str) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     self.real_tokens, self.targets)


def collate(rows: Sequence[Encoded], pad_token_id: int, task: str) -> Batch:
    """Right-padded tensors; padded label positions are IGNORE_INDEX, never the pad id."""
    width = max(row.length for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :row.length] = torch.tensor(row.input_ids, dtype=torch.long)
        attention_mask[i, :row.length] = 1
    if task == "dialogue":
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, :row.length] = torch.tensor(row.labels, dtype=torch.long)
        # Position 0 has no preceding token to predict it from, so it never counts.
        targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
    else:
        labels = torch.tensor([row.labels[0] for row in rows], dtype=torch.long)
        targets = len(rows)
    return Batch(input_ids, attention_mask, labels, int(attention_mask.sum()), targets)
