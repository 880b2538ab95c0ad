"""One base, many adapters: loaded once, LRU-evicted under the byte budget."""

import torch

from store.inference.protocol import DOES_NOT_FIT, GenerationRequest, ModelSpec
from tests.workers.serving.helpers import RecordingSink, chat
from workers.serving.model_cache import folder_tensor_bytes, module_bytes


def _generate(engine, key: str) -> RecordingSink:
    sink = RecordingSink()
    engine.submit_generation(GenerationRequest(f"req-{key}-{id(sink)}", key, chat("Hi"), max_tokens=2,
                                               temperature=0), sink)
    return sink.wait()


def _budget_for_base_and_two_adapters(tiny_chat_folder, lora_folders) -> int:
    from transformers import AutoModelForCausalLM

    base = module_bytes(AutoModelForCausalLM.from_pretrained(tiny_chat_folder, dtype=torch.float32))
    adapter = folder_tensor_bytes(lora_folders[0], 4)
    return base + 2 * adapter + adapter // 2


def _lora_specs(tiny_chat_folder, lora_folders) -> dict:
    return {f"tuned:{i}": ModelSpec(f"tuned:{i}", "causal", str(tiny_chat_folder), str(folder), "lora")
            for i, folder in enumerate(lora_folders)}


def test_it_loads_the_base_once_and_evicts_the_least_recently_used_adapter(
        make_engine, tiny_chat_folder, lora_folders):
    budget = _budget_for_base_and_two_adapters(tiny_chat_folder, lora_folders)
    engine = make_engine(_lora_specs(tiny_chat_folder, lora_folders), memory_budget_bytes=budget)

    for key in ("tuned:0", "tuned:1", "tuned:0"):  # tuned:1 is now the least recently used
        assert _generate(engine, key).result is not None
    assert engine.counters()["adapter_loads"] == 2
    assert _generate(engine, "tuned:2").result is not None

    counters = engine.counters()
    assert counters["model_loads"] == 1 and counters["model_evictions"] == 0
    assert counters["adapter_loads"] == 3 and counters["adapter_evictions"] == 1
    resident = engine.resident()
    [entry] = resident["entries"]
    assert sorted(a["model_key"] for a in entry["adapters"]) == ["tuned:0", "tuned:2"]
    assert resident["bytes_in_use"] == counters["bytes_in_use"] <= budget

    assert _generate(engine, "tuned:1").result is not None  # evicted, so loaded again (evicting tuned:0)
    counters = engine.counters()
    assert counters["adapter_loads"] == 4 and counters["adapter_evictions"] == 2
    assert counters["bytes_in_use"] <= budget
    assert sorted(a["model_key"] for a in engine.resident()["entries"][0]["adapters"]) == ["tuned:1", "tuned:2"]


def test_it_fails_with_does_not_fit_when_running_requests_hold_the_budget(
        make_engine, tiny_chat_folder, lora_folders):
    budget = _budget_for_base_and_two_adapters(tiny_chat_folder, lora_folders)
    engine = make_engine(_lora_specs(tiny_chat_folder, lora_folders), memory_budget_bytes=budget, start=False)
    long_sinks = [RecordingSink() for _ in range(2)]
    for i, sink in enumerate(long_sinks):
        engine.submit_generation(GenerationRequest(f"long-{i}", f"tuned:{i}", chat("Hi"), max_tokens=400,
                                                   temperature=0, ignore_eos=True), sink)
    third = RecordingSink()
    engine.submit_generation(GenerationRequest("third", "tuned:2", chat("Hi"), max_tokens=2), third)
    engine.start()

    assert third.wait().error[0] == DOES_NOT_FIT
    assert all(sink.wait().result["finish_reason"] == "length" for sink in long_sinks)
    assert engine.counters()["adapter_evictions"] == 0


def test_it_evicts_an_idle_model_for_another_one(make_engine, tiny_chat_folder, method_folders):
    from transformers import AutoModelForCausalLM

    base = module_bytes(AutoModelForCausalLM.from_pretrained(tiny_chat_folder, dtype=torch.float32))
    specs = {"base": ModelSpec("base", "causal", str(tiny_chat_folder)),
             "full": ModelSpec("full", "causal", str(tiny_chat_folder), str(method_folders["full"]), "full")}
    engine = make_engine(specs, memory_budget_bytes=base + base // 2)

    assert _generate(engine, "base").result is not None
    assert _generate(engine, "full").result is not None
    counters = engine.counters()
    assert counters["model_loads"] == 2 and counters["model_evictions"] == 1
    assert [entry["method"] for entry in engine.resident()["entries"]] == ["full"]


def test_it_fails_with_does_not_fit_when_the_model_alone_exceeds_the_budget(make_engine, tiny_chat_folder):
    engine = make_engine({"base": ModelSpec("base", "causal", str(tiny_chat_folder))}, memory_budget_bytes=10_000)
    sink = RecordingSink()
    engine.submit_generation(GenerationRequest("big", "base", chat("Hi"), max_tokens=2), sink)

    assert sink.wait().error[0] == DOES_NOT_FIT
    assert engine.counters()["model_loads"] == 0 and engine.counters()["bytes_in_use"] == 0


def test_an_encoders_lora_adapter_gets_a_merged_copy_and_a_classifiers_shares_the_base():
    """An embedding forward runs one adapter anyway: merged, it skips peft's per-layer adapter arithmetic."""
    from workers.serving.model_cache import plan_entry

    encoder = ModelSpec("tuned:7", "encoder", "/models/minilm", "/adapters/7", "lora")
    classifier = ModelSpec("tuned:8", "classifier", "/models/minilm", "/adapters/8", "lora", ["negative", "positive"])
    plain_encoder = ModelSpec("encoder:minilm", "encoder", "/models/minilm")
    encoder_key, encoder_method = plan_entry(encoder)
    assert encoder_method == "merged" and "/adapters/7" in encoder_key
    assert plan_entry(classifier) == (plan_entry(ModelSpec("tuned:9", "classifier", "/models/minilm", "/adapters/9",
                                                           "lora", ["negative", "positive"]))[0], "shared")
    assert plan_entry(plain_encoder)[1] == "shared" and plan_entry(plain_encoder)[0] != encoder_key
