"""Batch composition: grouped batches waste little on padding, and every order is reproducible."""

from __future__ import annotations

import random

import pytest

from workers.training.batching import collate, epoch_batches, steps_per_epoch
from workers.training.data import Encoded

_RNG = random.Random(7)
LENGTHS = [_RNG.randint(10, 400) for _ in range(200)]


def padded_tokens(batches: list[list[int]]) -> int:
    return sum(len(batch) * max(LENGTHS[i] for i in batch) for batch in batches)


def test_it_spends_much_less_on_padding_than_random_batches():
    grouped = padded_tokens(epoch_batches(LENGTHS, 8, seed=1, epoch=0, mode="grouped"))
    baseline = padded_tokens(epoch_batches(LENGTHS, 8, seed=1, epoch=0, mode="baseline"))
    assert grouped < 0.75 * baseline
    assert grouped < 1.05 * sum(LENGTHS)


@pytest.mark.parametrize("mode", ["grouped", "baseline"])
def test_it_uses_every_row_exactly_once_per_epoch(mode):
    batches = epoch_batches(LENGTHS, 8, seed=3, epoch=2, mode=mode)
    assert sorted(i for batch in batches for i in batch) == list(range(len(LENGTHS)))
    assert len(batches) == 25


@pytest.mark.parametrize("mode", ["grouped", "baseline"])
def test_it_derives_the_order_from_the_seed_and_the_epoch_alone(mode):
    random.seed(123)  # the global RNG must not matter
    first = epoch_batches(LENGTHS, 8, seed=5, epoch=0, mode=mode)
    random.seed(456)
    assert epoch_batches(LENGTHS, 8, seed=5, epoch=0, mode=mode) == first
    assert epoch_batches(LENGTHS, 8, seed=5, epoch=1, mode=mode) != first
    assert epoch_batches(LENGTHS, 8, seed=6, epoch=0, mode=mode) != first


def test_it_puts_the_batch_with_the_longest_row_first():
    batches = epoch_batches(LENGTHS, 8, seed=1, epoch=0, mode="grouped")
    assert max(LENGTHS) in [LENGTHS[i] for i in batches[0]]


def test_it_shuffles_grouped_batches_rather_than_ordering_them_by_length():
    batches = epoch_batches(LENGTHS, 8, seed=1, epoch=0, mode="grouped")
    widths = [max(LENGTHS[i] for i in batch) for batch in batches[1:]]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_it_counts_optimizer_steps_with_gradient_accumulation():
    assert steps_per_epoch(n_rows=17, batch_size=4, gradient_accumulation=2) == 3  # 5 batches -> 3 steps


def test_it_pads_inputs_with_the_pad_id_and_labels_with_ignore_index():
    rows = [Encoded([5, 6, 7], [-100, 6, 7]), Encoded([5, 8], [-100, 8])]
    batch = collate(rows, pad_token_id=2, task="dialogue")
    assert batch.input_ids.tolist() == [[5, 6, 7], [5, 8, 2]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch.labels.tolist() == [[-100, 6, 7], [-100, 8, -100]]
    assert (batch.real_tokens, batch.targets) == (5, 3)


@pytest.mark.parametrize("mode", ["grouped", "baseline"])
def test_it_evens_out_batch_sizes_so_no_batch_is_left_without_negatives(mode):
    batches = epoch_batches([5 + i % 7 for i in range(65)], 32, seed=1, epoch=0, mode=mode, even=True)
    assert sorted(len(batch) for batch in batches) == [21, 22, 22]
    assert sorted(i for batch in batches for i in batch) == list(range(65))
