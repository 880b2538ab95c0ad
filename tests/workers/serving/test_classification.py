"""Classification requests for one model are pooled into few forward calls; heads group by label set."""

import pytest
import torch

from store.inference.protocol import ClassificationRequest, ModelSpec
from tests.workers.serving.helpers import RecordingSink
from workers.serving.classification import FORWARD_COST_TOKENS, length_groups

THREE = ["negative", "neutral", "positive"]
TEXTS = ["Thank you so much, the boots are perfect!", "Where is my order?", "This is the worst service ever.",
         "Can I exchange these sneakers for a bigger size?"]


@pytest.fixture
def classifier_specs(tiny_encoder_folder, classifier_folders) -> dict:
    base = str(tiny_encoder_folder)
    return {
        "sentiment:a": ModelSpec("sentiment:a", "classifier", base, str(classifier_folders["three_a"]), "lora", THREE),
        "sentiment:b": ModelSpec("sentiment:b", "classifier", base, str(classifier_folders["three_b"]), "lora", THREE),
        "spam": ModelSpec("spam", "classifier", base, str(classifier_folders["two"]), "lora", ["ham", "spam"]),
    }


def test_it_classifies_sixteen_concurrent_requests_in_one_forward_call(make_engine, classifier_specs):
    engine = make_engine(classifier_specs, start=False)
    sinks = [RecordingSink() for _ in range(16)]
    for i, sink in enumerate(sinks):
        engine.submit_classification(ClassificationRequest(f"c{i}", "sentiment:a", [TEXTS[i % 4]]), sink)
    engine.start()
    results = [sink.wait().result for sink in sinks]

    assert engine.counters()["classification_forward_calls"] == 1
    for result in results:
        [item] = result["results"]
        assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert item["label"] == max(item["scores"], key=item["scores"].get)
        assert item["score"] == item["scores"][item["label"]]
        assert result["prompt_tokens"] > 0


def test_it_matches_plain_peft_and_splits_large_requests_into_batches(
        make_engine, classifier_specs, tiny_encoder_folder, classifier_folders):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    engine = make_engine(classifier_specs, classification_batch=3)
    sink = RecordingSink()
    engine.submit_classification(ClassificationRequest("many", "sentiment:b", TEXTS * 2), sink)
    results = sink.wait().result["results"]
    assert engine.counters()["classification_forward_calls"] == 3  # 8 texts in batches of 3

    base = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_folder, num_labels=3)
    model = PeftModel.from_pretrained(base, classifier_folders["three_b"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_folder)
    with torch.no_grad():
        expected = torch.softmax(model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits, dim=-1)
    for i, text_result in enumerate(results[:4]):
        assert [text_result["scores"][label] for label in THREE] == pytest.approx(expected[i].tolist(), abs=1e-5)


def test_it_shares_a_base_per_label_set(make_engine, classifier_specs):
    engine = make_engine(classifier_specs, start=False)
    sinks = {key: RecordingSink() for key in classifier_specs}
    for key, sink in sinks.items():
        engine.submit_classification(ClassificationRequest(key, key, TEXTS[:2]), sink)
    engine.start()
    results = {key: sink.wait().result for key, sink in sinks.items()}

    entries = engine.resident()["entries"]
    assert sorted(len(entry["adapters"]) for entry in entries) == [1, 2]
    assert engine.counters()["model_loads"] == 2
    assert set(results["spam"]["results"][0]["scores"]) == {"ham", "spam"}
    assert results["sentiment:a"]["results"] != results["sentiment:b"]["results"]


def test_it_serves_a_fully_tuned_classifier_as_its_own_model(make_engine, tiny_encoder_folder, classifier_specs,
                                                              tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(40)
    full = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_folder, num_labels=2)
    full.save_pretrained(tmp_path / "full")
    AutoTokenizer.from_pretrained(tiny_encoder_folder).save_pretrained(tmp_path / "full")
    specs = classifier_specs | {"full": ModelSpec("full", "classifier", str(tiny_encoder_folder),
                                                  str(tmp_path / "full"), "full", ["ham", "spam"])}
    engine = make_engine(specs)
    full_sink, lora_sink = RecordingSink(), RecordingSink()
    engine.submit_classification(ClassificationRequest("full", "full", TEXTS), full_sink)
    engine.submit_classification(ClassificationRequest("spam", "spam", TEXTS), lora_sink)
    results = full_sink.wait().result["results"]
    lora_sink.wait()

    assert sorted(entry["method"] for entry in engine.resident()["entries"]) == ["full", "shared"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_folder)
    with torch.no_grad():
        expected = torch.softmax(full.eval()(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits, dim=-1)
    for i, text_result in enumerate(results):
        assert [text_result["scores"][label] for label in ("ham", "spam")] == pytest.approx(expected[i].tolist(),
                                                                                             abs=1e-5)


def _forward_cost(lengths: list[int], groups: list[list[int]]) -> int:
    return sum(FORWARD_COST_TOKENS + len(group) * max(lengths[i] for i in group) for group in groups)


def test_texts_are_grouped_by_length_to_spare_padding():
    lengths = [3, 70, 5, 68, 4, 66, 6, 71] * 8  # short and long chat messages, interleaved
    groups = length_groups(lengths)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))  # each text once
    assert [sorted(lengths[i] for i in group) for group in groups] == [[lengths[i] for i in group] for group in groups]
    assert len(groups) == 2 and max(lengths[i] for i in groups[0]) == 6  # the short ones, then the long ones
    assert _forward_cost(lengths, groups) < 0.6 * _forward_cost(lengths, [list(range(len(lengths)))])


def test_similar_lengths_stay_in_one_forward_call():
    assert length_groups([12] * 30) == [list(range(30))]
    assert length_groups([9, 11, 10, 12]) == [[0, 2, 1, 3]]
    assert length_groups([7]) == [[0]]
    assert length_groups([]) == []


def test_mixed_lengths_take_several_forward_calls_and_keep_each_texts_result(
        make_engine, classifier_specs, tiny_encoder_folder, classifier_folders):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    long_texts = [" ".join(["my boots arrived late and the left one is torn"] * 9) + f" ({i})" for i in range(4)]
    texts = [text for pair in zip(TEXTS, long_texts, strict=True) for text in pair]  # short, long, short, long...
    engine = make_engine(classifier_specs)
    sink = RecordingSink()
    engine.submit_classification(ClassificationRequest("mixed", "sentiment:b", texts), sink)
    result = sink.wait().result
    assert engine.counters()["classification_forward_calls"] == 2

    base = AutoModelForSequenceClassification.from_pretrained(tiny_encoder_folder, num_labels=3)
    model = PeftModel.from_pretrained(base, classifier_folders["three_b"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_folder)
    with torch.no_grad():  # one batch padded to the longest text: what the engine's grouping must reproduce
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        expected = torch.softmax(model(**encoded).logits, dim=-1)
    for i, item in enumerate(result["results"]):
        assert [item["scores"][label] for label in THREE] == pytest.approx(expected[i].tolist(), abs=1e-5)
        assert item["tokens"] == int(encoded["attention_mask"][i].sum())
    assert result["prompt_tokens"] == int(encoded["attention_mask"].sum())


def test_a_small_forward_runs_on_one_thread_and_a_larger_one_on_all():
    from workers.serving.classification import SMALL_FORWARD_TOKENS, _threads_for

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with _threads_for(SMALL_FORWARD_TOKENS):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with _threads_for(SMALL_FORWARD_TOKENS + 1):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), _threads_for(4):
            raise RuntimeError("a failed forward")
        assert torch.get_num_threads() == 2  # restored after a failure too
    finally:
        torch.set_num_threads(before)
