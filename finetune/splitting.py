"""Reproducible train / validation / test splits.

- Seeded: the same rows, ratios and seed always give the same split.
- Stratified by label for classification, so every part keeps the label balance.
- Near-duplicate texts (same words up to case and punctuation, or MinHash Jaccard >= 0.8 on
  character shingles) form one group and land in one part: a test row never has a twin in train.
- Retrieval pairs group by query the same way, and pairs that share a passage join one group, so
  test queries are asked about passages the tuned model never trained on — unless one passage holds
  so many rows that keeping them together would leave a part empty; then only queries group.
"""

from __future__ import annotations

import random
import re
import unicodedata
import zlib
from collections import defaultdict

import numpy as np

from core.bounds import SEED

DEFAULT_RATIOS = (0.8, 0.1, 0.1)
PARTS = ("train", "validation", "test")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# 8 bands of 4 hashes: pairs with Jaccard >= 0.8 share a band with p ~ 0.985, pairs below 0.3 rarely.
_HASHES, _BANDS = 32, 8
_PRIME = (1 << 61) - 1
_MAX_REPRESENTATIVES = 48
_rng = np.random.default_rng(20240601)  # fixed: signatures must be identical in every process
_A = _rng.integers(1, _PRIME, _HASHES, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, _HASHES, dtype=np.uint64)
_JACCARD = 0.8


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", text).strip()


def row_text(row: dict) -> str:
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"] if m["role"] != "system")
    if "query" in row:
        return row["query"]
    return row["text"]


def _shingles(text: str, size: int = 4) -> set[str]:
    if len(text) <= size:
        return {text}
    return {text[i:i + size] for i in range(len(text) - size + 1)}


def _minhash(shingles: set[str]) -> tuple[int, ...]:
    # One deterministic CRC per shingle, then 32 universal hashes (a*x + b) computed at once.
    values = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64, count=len(shingles))
    mixed = (values[None, :] * _A[:, None] + _B[:, None]) & np.uint64(_PRIME)
    return tuple(int(v) for v in mixed.min(axis=1))


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(texts: list[str]) -> list[int]:
    """A group id per text; exact (normalized) and near duplicates share an id."""
    normalized = [normalize(t) for t in texts]
    groups = _UnionFind(len(texts))
    first_seen: dict[str, int] = {}
    for index, text in enumerate(normalized):
        if text in first_seen:
            groups.union(first_seen[text], index)
        else:
            first_seen[text] = index
    shingle_sets = {index: _shingles(text) for text, index in first_seen.items()}
    signatures = {index: _minhash(shingles) for index, shingles in shingle_sets.items()}
    rows_per_band = _HASHES // _BANDS
    for band in range(_BANDS):
        buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, signature in signatures.items():
            buckets[tuple(signature[band * rows_per_band:(band + 1) * rows_per_band])].append(index)
        for members in buckets.values():
            # Compare each member with a bounded set of representatives of the bucket: a huge bucket
            # of merely similar texts would otherwise cost O(k^2); true twins collide in other bands too.
            representatives: list[int] = []
            for member in members:
                for other in representatives:
                    if groups.find(member) == groups.find(other):
                        break
                    sa, sb = shingle_sets[member], shingle_sets[other]
                    if len(sa & sb) / len(sa | sb) >= _JACCARD:
                        groups.union(member, other)
                        break
                else:
                    if len(representatives) < _MAX_REPRESENTATIVES:
                        representatives.append(member)
    return [groups.find(i) for i in range(len(texts))]


def check_ratios(ratios: tuple[float, ...] | list[float]) -> list[str]:
    if len(ratios) != 3:
        return ["give three ratios: train, validation, test"]
    errors = []
    if any(r < 0 for r in ratios):
        errors.append("ratios cannot be negative")
    if ratios[0] <= 0:
        errors.append("the train ratio must be positive")
    if abs(sum(ratios) - 1.0) > 1e-6:
        errors.append(f"ratios must add up to 1 (they add up to {sum(ratios):g})")
    return errors


def shared_passage_groups(rows: list[dict], groups: list[int]) -> list[int]:
    """`groups` with the groups of rows that pair with the same (normalized) passage merged."""
    merged = _UnionFind(len(rows))
    first_of_group: dict[int, int] = {}
    first_of_passage: dict[str, int] = {}
    for index, (row, group) in enumerate(zip(rows, groups, strict=True)):
        merged.union(first_of_group.setdefault(group, index), index)
        merged.union(first_of_passage.setdefault(normalize(row["passage"]), index), index)
    return [merged.find(i) for i in range(len(rows))]


def split_rows(rows: list[dict], ratios=DEFAULT_RATIOS, seed: int = 42) -> dict[str, list[int]]:
    """Row indices per part. Whole near-duplicate groups go to one part, stratified by label."""
    if check_ratios(ratios):
        raise ValueError("; ".join(check_ratios(ratios)))
    SEED.check(seed)  # the seed is stored with the split (a 32-bit column) and must reproduce it
    groups = near_duplicate_groups([row_text(row) for row in rows])
    if rows and "passage" in rows[0]:
        parts = _assign_groups(rows, shared_passage_groups(rows, groups), ratios, seed)
        starved = any(ratio > 0 and not parts[name] for name, ratio in zip(PARTS, ratios, strict=True))
        if not starved or len(rows) < len(PARTS):
            return parts
    return _assign_groups(rows, groups, ratios, seed)


def _assign_groups(rows: list[dict], groups: list[int], ratios, seed: int) -> dict[str, list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    strata: dict[str, list[int]] = defaultdict(list)
    for group, indices in members.items():
        labels = [rows[i].get("label", "") for i in indices]
        strata[max(set(labels), key=lambda label: (labels.count(label), label))].append(group)

    rng = random.Random(seed)
    parts: dict[str, list[int]] = {name: [] for name in PARTS}
    for label in sorted(strata):
        group_ids = sorted(strata[label])
        rng.shuffle(group_ids)
        total = sum(len(members[g]) for g in group_ids)
        targets = [ratio * total for ratio in ratios]
        filled = [0, 0, 0]
        for group in group_ids:
            # Put the group where it closes the largest remaining gap to the target counts.
            index = max(range(3), key=lambda p: (targets[p] - filled[p], -p))
            filled[index] += len(members[group])
            parts[PARTS[index]].extend(members[group])
    for name in PARTS:
        parts[name].sort()
    return parts
