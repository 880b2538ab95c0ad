"""Methods that cannot share a LoRA-served base are each served as their own model, correctly."""

import pytest

from store.inference.protocol import GenerationRequest, ModelSpec
from tests.workers.serving.helpers import RecordingSink, assert_greedy_path, chat, prompt_ids, reference_model


@pytest.fixture
def method_specs(tiny_chat_folder, method_folders, lora_folders) -> dict:
    specs = {method: ModelSpec(f"tuned:{method}", "causal", str(tiny_chat_folder), str(folder), method)
             for method, folder in method_folders.items()}
    specs["lora"] = ModelSpec("tuned:lora", "causal", str(tiny_chat_folder), str(lora_folders[0]), "lora")
    return {spec.key: spec for spec in specs.values()}


def test_it_serves_full_ia3_adalora_and_prefix_tuning_as_their_own_models(
        make_engine, tiny_chat_folder, method_specs):
    engine = make_engine(method_specs, start=False)
    messages = chat("Do you ship abroad?")
    sinks = {key: RecordingSink() for key in method_specs}
    for key, sink in sinks.items():
        engine.submit_generation(GenerationRequest(key, key, messages, max_tokens=8, temperature=0,
                                                   ignore_eos=True), sink)
    engine.start()
    results = {key: sink.wait().result for key, sink in sinks.items()}

    methods = sorted(entry["method"] for entry in engine.resident()["entries"])
    assert methods == ["full", "merged", "merged", "prefix", "shared"]
    prompt = prompt_ids(tiny_chat_folder, messages)
    for key, spec in method_specs.items():
        assert results[key] is not None, sinks[key].error
        if spec.adapter_type == "full":
            model = reference_model(spec.adapter_folder)
        else:
            model = reference_model(tiny_chat_folder, spec.adapter_folder)
        assert_greedy_path(model, prompt, results[key]["token_ids"])


def test_it_serves_prefix_tuning_rows_of_different_lengths_together(make_engine, tiny_chat_folder, method_specs):
    engine = make_engine(method_specs, start=False)
    questions = ["Hi", "What payment methods do you accept for gift cards?"]
    sinks = [RecordingSink() for _ in questions]
    for i, (question, sink) in enumerate(zip(questions, sinks, strict=True)):
        engine.submit_generation(GenerationRequest(f"p{i}", "tuned:prefix_tuning", chat(question), max_tokens=6,
                                                   temperature=0, ignore_eos=True), sink)
    engine.start()
    results = [sink.wait().result for sink in sinks]

    # Only after the engine is done: from_pretrained in two threads at once corrupts tied weights.
    model = reference_model(tiny_chat_folder, method_specs["tuned:prefix_tuning"].adapter_folder)
    for question, result in zip(questions, results, strict=True):
        assert_greedy_path(model, prompt_ids(tiny_chat_folder, chat(question)), result["token_ids"])
    assert engine.counters()["max_rows_in_step"] == 2
