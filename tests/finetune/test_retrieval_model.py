"""GPT Store Retrieval's trainer: the right questions and passages from the data, an adapter with its
calibration, and a merged folder the engine loads like any base model."""

import json

import pytest

from finetune.retrieval_model import (
    DATA_DIR,
    HELD_OUT,
    Business,
    business_names,
    choose_cut,
    evaluation_only,
    load_business,
    train,
)
from knowledge.chunking import passage_and_sentences
from store.catalog import BUNDLED_DIR
from workers.models.loading import materialize_adapter


def test_it_reads_a_business_with_the_passages_that_answer_each_question():
    business = load_business(DATA_DIR / "beanbarn-coffee")
    assert len(business.passages) > 20 and len(business.unanswerable) == 40
    assert len(business.answerable) >= 55
    for query, gold in business.answerable:
        assert gold and all(0 <= i < len(business.passages) for i in gold)
    followups = [q for q, _ in business.answerable if len(q.split()) > 6 and "?" in q[:-1]]
    assert followups  # a follow-up is looked up together with the message before it


def test_the_bundled_model_was_trained_on_every_business_but_those_kept_for_measuring_it():
    kept = evaluation_only()
    assert len(kept) >= 16 and kept <= set(business_names()) and not kept & set(HELD_OUT)
    manifest = json.loads((BUNDLED_DIR / "gpt-store-retrieval" / "gpt_store.json").read_text())
    trained = set(manifest["training"]["businesses"])
    # What `manage.py train_retrieval_model` trains on reproduces the bundled model's training set.
    assert trained == set(business_names()) - kept - set(HELD_OUT)
    assert manifest["metrics"]["held_out"] == list(HELD_OUT)


def test_the_cut_keeps_nine_in_ten_answerable_questions_answered():
    answerable = [0.30 + 0.01 * i for i in range(50)]
    cut = choose_cut(answerable, [0.2, 0.35])
    assert sum(s >= cut for s in answerable) / len(answerable) == pytest.approx(0.9, abs=0.02)


def _business(name: str, topics: list[tuple[str, str]]) -> Business:
    passages = [passage_and_sentences(f"{question}\n{answer}") for question, answer in topics]
    business = Business(name, passages, [p[0].lower() for p in passages])
    business.answerable = [(question.lower().replace("?", " please?"), {i}) for i, (question, _) in enumerate(topics)]
    business.unanswerable = ["Who founded the company?", "Do you sell gift wrapping?"]
    return business


def test_it_trains_an_adapter_with_its_calibration_and_merges_it_for_serving(tiny_encoder_folder, tmp_path):
    import torch
    from transformers import AutoModel

    topics = [("How much is delivery?", "Delivery costs $4.95. Express is faster."),
              ("Can I return shoes?", "Within 30 days."), ("Do you ship abroad?", "US and Canada only."),
              ("How do I pay?", "Visa or PayPal.")]
    data = [_business(f"shop-{n}", topics) for n in range(3)]
    metrics = train(tmp_path / "adapter", epochs=2, echo=lambda line: None, base_folder=tiny_encoder_folder,
                    data=data, held_out_names=("shop-2",))
    manifest = json.loads((tmp_path / "adapter" / "gpt_store.json").read_text())
    calibration = manifest["retrieval_calibration"]
    assert -1 <= calibration["cut"] <= 1 and calibration["scale"] > 0
    assert manifest["metrics"] == metrics and metrics["held_out"] == ["shop-2"] and metrics["answered"] >= 0.75
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()

    merged = materialize_adapter(tiny_encoder_folder, tmp_path / "adapter", "retrieval", cache_dir=tmp_path / "cache")
    assert materialize_adapter(tiny_encoder_folder, tmp_path / "adapter", "retrieval",
                               cache_dir=tmp_path / "cache") == merged  # merged once
    assert json.loads((merged / "gpt_store.json").read_text())["retrieval_calibration"] == calibration
    ids = torch.tensor([[101, 2129, 2172, 2003, 6959, 102]])
    with torch.no_grad():
        tuned = AutoModel.from_pretrained(merged)(input_ids=ids).last_hidden_state
        base = AutoModel.from_pretrained(tiny_encoder_folder)(input_ids=ids).last_hidden_state
    assert not torch.allclose(tuned, base)  # the adapter is in the weights
