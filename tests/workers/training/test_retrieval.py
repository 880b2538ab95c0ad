"""The retrieval maths: pooling (the serving engine's), the in-batch-negatives loss, and the metrics."""

from __future__ import annotations

import math

import pytest
import torch

from workers.training.batching import collate_pairs
from workers.training.data import EncodedPair
from workers.training.retrieval import (
    answer_ranks,
    in_batch_negatives_loss,
    mean_pool,
    retrieval_metrics,
    retrieval_task,
    shared_answers,
)

TEXTS = ["Do you ship to Canada?", "Hi", "You can return unworn shoes within 30 days for a full refund, no questions."]


def test_it_computes_the_in_batch_loss_of_a_hand_worked_example():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    passages = torch.tensor([[0.8, 0.6], [0.5, 0.5 * math.sqrt(3)]], dtype=torch.float64)
    # Scaled cosines: query 0 -> [16, 10], query 1 -> [12, 10 * sqrt 3]; each query's own passage is
    # the target: -log(e^16 / (e^16 + e^10)) - log(e^17.32 / (e^12 + e^17.32)).
    expected = math.log(1 + math.exp(-6)) + math.log(1 + math.exp(12 - 10 * math.sqrt(3)))
    assert float(in_batch_negatives_loss(queries, passages)) == pytest.approx(expected, rel=1e-9)


def test_it_does_not_count_a_repeated_passage_as_a_negative():
    rows = [EncodedPair([101, 7, 102], [101, 9, 9, 102]), EncodedPair([101, 8, 102], [101, 9, 9, 102])]
    batch = collate_pairs(rows, pad_token_id=0)
    assert batch.labels.tolist() == [[0, 1], [0, 0]]  # two questions, one passage
    queries = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    passages = torch.tensor([[0.6, 0.8], [0.6, 0.8]])
    # Unmasked, each query scores both (identical) columns alike: log 2 each.
    assert float(in_batch_negatives_loss(queries, passages)) == pytest.approx(2 * math.log(2))
    answers = shared_answers(batch.labels[0], batch.labels[1])
    assert float(in_batch_negatives_loss(queries, passages, answers)) == 0.0


def test_it_does_not_count_another_answer_to_the_same_question_as_a_negative():
    rows = [EncodedPair([101, 7, 102], [101, 5, 102]), EncodedPair([101, 7, 102], [101, 6, 102]),
            EncodedPair([101, 8, 102], [101, 4, 102])]
    batch = collate_pairs(rows, pad_token_id=0)
    answers = shared_answers(batch.labels[0], batch.labels[1])
    assert answers.tolist() == [[True, True, False], [True, True, False], [False, False, True]]


def test_it_puts_queries_before_passages_in_one_padded_batch():
    batch = collate_pairs([EncodedPair([1, 2], [3, 4, 5]), EncodedPair([6], [7])], pad_token_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 0], [6, 0, 0], [3, 4, 5], [7, 0, 0]]
    assert (batch.targets, batch.real_tokens) == (2, 7)


def test_it_mean_pools_over_real_tokens_only_and_normalises():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    pooled = mean_pool(hidden, torch.tensor([[1, 1, 0]]))
    assert torch.allclose(pooled, torch.tensor([[2.0, 2.0]]) / math.sqrt(8))


def test_it_pools_exactly_like_the_serving_engine(tiny_encoder_folder):
    """The engine's `embed` and our evaluation's pooling give the same vectors for texts of any length."""
    from transformers import AutoModel, AutoTokenizer

    from store.inference.protocol import EmbeddingRequest, ModelSpec, unpack_vectors
    from tests.workers.serving.helpers import RecordingSink
    from workers.serving.engine import InferenceEngine
    from workers.training.evaluation import embed_sequences

    spec = ModelSpec("encoder:tiny", "encoder", str(tiny_encoder_folder))
    engine = InferenceEngine(lambda key: spec, device="cpu")
    engine.start()
    try:
        sink = RecordingSink()
        engine.submit_embedding(EmbeddingRequest("e1", "encoder:tiny", TEXTS), sink)
        served = torch.tensor(unpack_vectors(sink.wait().result))
    finally:
        engine.stop()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_folder)
    model = AutoModel.from_pretrained(tiny_encoder_folder)
    ours = embed_sequences(model, tokenizer(TEXTS)["input_ids"], tokenizer.pad_token_id, batch_size=2, device="cpu")
    assert torch.allclose(ours, served, atol=1e-5)


def test_it_ranks_and_scores_retrieval():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    passages = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    # Query 0's answer is passage 0 (rank 1); query 1's is passage 1 (rank 2 behind passage 2);
    # query 2's answers are passages 0 and 2: the better placed, passage 2, ranks 2 behind passage 1.
    ranks, tops = answer_ranks(queries, passages, [{0}, {1}, {0, 2}])
    assert (ranks, tops) == ([1, 2, 2], [0, 2, 1])
    metrics = retrieval_metrics(ranks)
    assert metrics == {"recall_at_1": pytest.approx(1 / 3), "recall_at_3": 1.0,
                       "mrr": pytest.approx((1 + 0.5 + 0.5) / 3), "queries": 3}


def test_it_counts_every_passage_a_question_is_paired_with_as_an_answer():
    queries, passages, relevant = retrieval_task(
        ["b", "a", "b"], [("a", "x"), ("b", "y"), ("b", "z"), ("c", "x")])
    assert (queries, passages, relevant) == (["b", "a"], ["x", "y", "z"], [{1, 2}, {0}])
