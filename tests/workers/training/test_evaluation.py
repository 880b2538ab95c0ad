"""Evaluation figures, checked against numbers worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tests.workers.training.conftest import LABELS, chat
from workers.training.data import Encoded
from workers.training.evaluation import (
    classification_metrics,
    evaluate_classifier,
    evaluate_dialogue,
    language_model_scores,
    vader_label,
    vader_predictions,
)


def test_it_computes_accuracy_macro_f1_per_class_figures_and_the_confusion_matrix():
    references = [0, 0, 1, 1, 2, 2, 2]
    predictions = [0, 1, 1, 1, 2, 0, 2]
    metrics = classification_metrics(references, predictions, LABELS)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert metrics["accuracy"] == pytest.approx(5 / 7)
    assert metrics["per_class"]["negative"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                                               "support": 2})
    assert metrics["per_class"]["neutral"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8,
                                                              "support": 2})
    assert metrics["per_class"]["positive"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                                               "support": 3})
    assert metrics["macro_f1"] == pytest.approx(0.7)


def test_it_leaves_labels_absent_from_references_and_predictions_out_of_the_macro_average():
    metrics = classification_metrics([0, 1], [0, 1], LABELS)
    assert metrics["macro_f1"] == 1.0
    assert metrics["per_class"]["positive"]["support"] == 0


@pytest.mark.parametrize(("compound", "label"), [(0.05, "positive"), (0.049, "neutral"), (-0.049, "neutral"),
                                                 (-0.05, "negative")])
def test_it_maps_vader_compound_scores_with_the_usual_thresholds(compound, label):
    assert vader_label(compound) == label


@pytest.fixture
def sentiment_model(make_spec):
    from workers.models.loading import load_tokenizer
    from workers.training.modeling import build_model

    spec = make_spec(task="sentiment")
    tokenizer = load_tokenizer(spec.base_folder)
    return build_model(spec, tokenizer.pad_token_id, total_steps=1), tokenizer


def test_it_scores_the_vader_baseline_on_the_same_rows(sentiment_model, sentiment_rows):
    model, tokenizer = sentiment_model
    report = evaluate_classifier(model, tokenizer, sentiment_rows, LABELS, max_seq_length=64)
    vader = vader_predictions([row["text"] for row in sentiment_rows])
    expected = classification_metrics([LABELS.index(r["label"]) for r in sentiment_rows],
                                      [LABELS.index(v) for v in vader], LABELS)
    assert report["baselines"]["vader"] == expected
    assert report["samples"][0] == {"text": sentiment_rows[0]["text"], "reference": "positive",
                                    "tuned": report["samples"][0]["tuned"], "vader": "positive"}
    assert report["tuned"]["examples"] == len(sentiment_rows)


def test_it_skips_vader_for_labels_other_than_negative_neutral_positive(sentiment_model):
    model, tokenizer = sentiment_model
    rows = [{"text": "Where is my parcel?", "label": "question"}, {"text": "Love it", "label": "praise"}]
    report = evaluate_classifier(model, tokenizer, rows, ["complaint", "praise", "question"], max_seq_length=64)
    assert "skipped" in report["baselines"]["vader"]
    assert "vader" not in report["samples"][0]


class NextTokenGuesser(torch.nn.Module):
    """Predicts token (t + 1) % 4 after token t, with logit log(3) against 0 for the other three."""

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros((*input_ids.shape, 4))
        logits.scatter_(-1, ((input_ids + 1) % 4).unsqueeze(-1), math.log(3))
        return SimpleNamespace(logits=logits)


def test_it_computes_loss_perplexity_and_token_accuracy_over_labelled_tokens():
    rows = [Encoded([0, 1, 2, 3], [-100, -100, 2, 3]),  # both predictions right
            Encoded([0, 3, 1], [-100, 3, 1])]  # both wrong
    scores = language_model_scores(NextTokenGuesser(), rows, pad_token_id=0, batch_size=2, device="cpu",
                                   path="full")
    # right: -log(3/6) = log 2; wrong: -log(1/6) = log 6
    assert scores["tokens"] == 4
    assert scores["token_accuracy"] == 0.5
    assert scores["loss"] == pytest.approx((math.log(2) + math.log(6)) / 2)
    assert scores["perplexity"] == pytest.approx(math.sqrt(12))


def test_it_compares_base_and_tuned_replies_on_held_out_prompts(make_spec):
    from workers.models.loading import load_tokenizer
    from workers.training.modeling import build_model

    spec = make_spec()
    tokenizer = load_tokenizer(spec.base_folder)
    model = build_model(spec, tokenizer.pad_token_id, total_steps=1)  # a fresh LoRA adapter changes nothing yet
    rows = [chat("Where is my order?", "It ships today.", "Thanks", "You are welcome!"), chat("Hi", "Hello!")]
    report = evaluate_dialogue(model, tokenizer, rows, max_seq_length=128, sample_count=8, max_new_tokens=4)
    assert report["tuned"] == report["baselines"]["base"]
    assert [s["reference"] for s in report["samples"]] == ["You are welcome!", "Hello!"]
    assert report["samples"][0]["prompt"] == rows[0]["messages"][:-1]
    assert all(s["base"] == s["tuned"] for s in report["samples"])
