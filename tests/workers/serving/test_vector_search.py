"""Exact nearest-neighbour search over a knowledge base's vectors (workers/serving/search.py)."""

import pytest
import torch

from workers.serving.search import VectorIndex, nearest


def index_of(matrix: torch.Tensor, ids: list[int]) -> VectorIndex:
    return VectorIndex("kb1@1", "kb1", ids, matrix)


def test_each_query_gets_its_k_most_similar_rows_best_first():
    generator = torch.Generator().manual_seed(0)
    matrix = torch.nn.functional.normalize(torch.randn(500, 16, generator=generator), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=1)
    hits = nearest(index_of(matrix, list(range(500))), queries, 5)
    for query, found in zip(queries, hits, strict=True):
        similarities = matrix @ query
        expected = sorted(range(500), key=lambda row: -float(similarities[row]))[:5]
        assert [row for row, _ in found] == expected
        assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
        assert abs(found[0][1] - float(similarities[expected[0]])) < 1e-6


def test_a_query_equal_to_a_row_finds_that_row_with_similarity_one():
    matrix = torch.eye(4)
    hits = nearest(index_of(matrix, [10, 11, 12, 13]), torch.eye(4)[[2]], 2)
    assert hits[0][0][0] == 2 and abs(hits[0][0][1] - 1.0) < 1e-6


def test_k_beyond_the_rows_and_an_empty_index():
    assert len(nearest(index_of(torch.eye(3), [1, 2, 3]), torch.eye(3)[:1], 10)[0]) == 3
    assert nearest(index_of(torch.zeros((0, 3)), []), torch.eye(3)[:2], 4) == [[], []]


def test_a_single_query_finds_what_it_finds_among_others():
    """One query is searched as two identical rows (torch's matrix-vector kernel is slow): same hits."""
    generator = torch.Generator().manual_seed(1)
    matrix = torch.nn.functional.normalize(torch.randn(300, 16, generator=generator), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=1)
    index = index_of(matrix, list(range(1000, 1300)))
    together = nearest(index, queries, 4)
    for position in range(3):
        alone = nearest(index, queries[position:position + 1], 4)
        assert len(alone) == 1
        assert [row for row, _ in alone[0]] == [row for row, _ in together[position]]
        assert [score for _, score in alone[0]] == pytest.approx([score for _, score in together[position]], abs=1e-6)
