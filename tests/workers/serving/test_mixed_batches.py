"""Several LoRA adapters and the base decoded in one batch give what each would give alone."""

from store.inference.protocol import GenerationRequest, ModelSpec
from tests.workers.serving.helpers import RecordingSink, assert_greedy_path, chat, prompt_ids, reference_model


def test_it_decodes_three_adapters_and_the_base_in_one_batch_like_each_alone(
        make_engine, tiny_chat_folder, lora_folders):
    specs = {"base": ModelSpec("base", "causal", str(tiny_chat_folder))}
    specs |= {f"tuned:{i}": ModelSpec(f"tuned:{i}", "causal", str(tiny_chat_folder), str(folder), "lora")
              for i, folder in enumerate(lora_folders)}
    engine = make_engine(specs, start=False)
    questions = ["Hi", "Where is my order?", "Can I return unworn shoes within 30 days for a full refund?",
                 "Sizes?"]  # different lengths, so the batch is left-padded
    messages = {key: chat(question) for key, question in zip(specs, questions, strict=True)}
    sinks = {key: RecordingSink() for key in specs}
    for key in specs:  # all queued before the engine starts, so they are prefilled and decoded together
        engine.submit_generation(GenerationRequest(key, key, messages[key], max_tokens=12, temperature=0,
                                                   ignore_eos=True), sinks[key])
    engine.start()
    results = {key: sink.wait().result for key, sink in sinks.items()}

    counters = engine.counters()
    assert counters["prefill_calls"] == 1
    assert counters["max_rows_in_step"] == 4
    assert counters["model_loads"] == 1 and counters["adapter_loads"] == 3
    for key, spec in specs.items():
        assert results[key]["completion_tokens"] == 12
        model = reference_model(tiny_chat_folder, spec.adapter_folder)
        assert_greedy_path(model, prompt_ids(tiny_chat_folder, messages[key]), results[key]["token_ids"])
    adapter_outputs = {tuple(results[f"tuned:{i}"]["token_ids"]) for i in range(3)}
    assert len(adapter_outputs) == 3
