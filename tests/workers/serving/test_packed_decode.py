"""Whole decode steps in the packed kernel (fast_decode.py), checked against transformers' own forward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from store.inference.protocol import GenerationRequest, ModelSpec  # noqa: E402
from tests.workers.serving.helpers import RecordingSink, assert_greedy_path, chat, prompt_ids, reference_model  # noqa: E402

QUESTIONS = {"long": "Hi", "short": "Where is my order? I ordered last week and nothing came.",
             "late": "Can I exchange these sneakers for a bigger size?"}


@pytest.fixture(scope="module")
def quantized_folder(tmp_path_factory):
    from tests.tiny_models import build_quantized_chat_model

    return build_quantized_chat_model(tmp_path_factory.mktemp("quantized-chat"))


@pytest.fixture(scope="module")
def quantized_lora(quantized_folder, tmp_path_factory):
    from peft import LoraConfig

    from tests.workers.serving.conftest import _random_adapter

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return _random_adapter(quantized_folder, config, tmp_path_factory.mktemp("quantized-lora") / "a", seed=40)


@pytest.fixture(scope="module")
def quantized_prefix(quantized_folder, tmp_path_factory):
    from peft import PrefixTuningConfig

    from tests.workers.serving.conftest import _random_adapter

    config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    return _random_adapter(quantized_folder, config, tmp_path_factory.mktemp("quantized-prefix") / "p", seed=41)


def test_a_kernel_step_gives_transformers_logits_for_left_padded_rows_as_the_cache_grows(quantized_folder,
                                                                                        monkeypatch):
    from transformers import AutoModelForCausalLM

    from workers.serving.fast_decode import LlamaDecoder
    from workers.serving.kv_cache import SlabLayer, new_batch_cache
    from workers.serving.packed import pack_model

    monkeypatch.setattr(SlabLayer, "growth", 4)  # the kernel's step must regrow the slabs several times
    reference = AutoModelForCausalLM.from_pretrained(quantized_folder, dtype=torch.float32).eval()
    packed = AutoModelForCausalLM.from_pretrained(quantized_folder, dtype=torch.float32).eval()
    assert pack_model(packed) > 0
    decoder = LlamaDecoder.for_model(packed)
    assert decoder is not None
    assert LlamaDecoder.for_model(reference) is None  # nothing packed: transformers' forward

    torch.manual_seed(3)
    lengths = [9, 4, 7]
    longest = max(lengths)
    ids = torch.randint(3, 400, (3, longest))
    mask = torch.tensor([[0] * (longest - n) + [1] * n for n in lengths])
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    caches = [new_batch_cache(reference.config)[0] for _ in range(2)]
    with torch.inference_mode():
        for model, cache in zip((reference, packed), caches, strict=True):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1]
        tokens, next_positions = logits.argmax(-1), positions[:, -1] + 1
        for _ in range(12):
            mask = torch.cat([mask, mask.new_ones(3, 1)], dim=1)
            expected = reference(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_positions[:, None],
                                 past_key_values=caches[0], use_cache=True).logits[:, -1]
            assert decoder.accepts(3, caches[1])
            got = decoder.step(tokens, next_positions, mask, caches[1])
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
            assert caches[1].layers[0].keys.shape == caches[0].layers[0].keys.shape
            tokens, next_positions = expected.argmax(-1), next_positions + 1
    assert not decoder.accepts(3, new_batch_cache(reference.config)[0])  # an empty cache: prefill first


def test_a_short_prefill_in_the_kernel_gives_transformers_logits_and_states(quantized_folder):
    """Rows reusing cached states of different lengths (one none), with left-padded remainders, as a prompt
    cache hands them to a prefill: the kernel's logits and written states are transformers'."""
    from transformers import AutoModelForCausalLM, DynamicCache

    from workers.serving.fast_decode import LlamaDecoder
    from workers.serving.kv_cache import new_batch_cache
    from workers.serving.packed import pack_model

    reference = AutoModelForCausalLM.from_pretrained(quantized_folder, dtype=torch.float32).eval()
    packed = AutoModelForCausalLM.from_pretrained(quantized_folder, dtype=torch.float32).eval()
    pack_model(packed)
    decoder = LlamaDecoder.for_model(packed)
    assert decoder is not None

    torch.manual_seed(5)
    prompts = [torch.randint(3, 400, (n,)).tolist() for n in (9, 6, 5)]
    reused = [6, 2, 0]
    held, width = max(reused), max(len(p) - n for p, n in zip(prompts, reused, strict=True))
    layers = reference.config.num_hidden_layers
    kv_heads, head_dim = reference.config.num_key_value_heads, reference.config.hidden_size // \
        reference.config.num_attention_heads
    states = [[torch.zeros(3, kv_heads, held, head_dim) for _ in range(2)] for _ in range(layers)]
    with torch.inference_mode():
        for row, (prompt, n) in enumerate(zip(prompts, reused, strict=True)):
            if n:
                alone = DynamicCache(config=reference.config)
                reference(input_ids=torch.tensor([prompt[:n]]), past_key_values=alone, use_cache=True)
                for layer in range(layers):
                    states[layer][0][row, :, held - n:] = alone.layers[layer].keys[0]
                    states[layer][1][row, :, held - n:] = alone.layers[layer].values[0]
        caches = [new_batch_cache(reference.config)[0] for _ in range(2)]
        for cache in caches:
            for layer, (keys, values) in zip(cache.layers, states, strict=True):
                layer.set_states(keys.clone(), values.clone())
        remaining = [p[n:] for p, n in zip(prompts, reused, strict=True)]
        ids = torch.tensor([[0] * (width - len(r)) + r for r in remaining])
        mask = torch.tensor([[0] * (held - n) + [1] * n + [0] * (width - len(r)) + [1] * len(r)
                             for n, r in zip(reused, remaining, strict=True)])
        positions = (mask[:, held:].cumsum(1) - 1).clamp(min=0) + torch.tensor(reused)[:, None]
        expected = reference(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=caches[0],
                             use_cache=True, logits_to_keep=1).logits[:, -1]
        assert decoder.prefills(sum(map(len, remaining)), caches[1])
        got = decoder.prefill(ids, positions, mask, caches[1])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        for row, prompt in enumerate(prompts):  # each row's whole prompt alone, no cache, no padding
            alone = reference(input_ids=torch.tensor([prompt])).logits[0, -1]
            torch.testing.assert_close(got[row], alone, rtol=1e-4, atol=1e-4)
        keep = mask.bool()
        for kernel_layer, reference_layer in zip(caches[1].layers, caches[0].layers, strict=True):
            assert kernel_layer.keys.shape == reference_layer.keys.shape
            by_column = [t.transpose(1, 2) for t in (kernel_layer.keys, reference_layer.keys, kernel_layer.values,
                                                      reference_layer.values)]  # [rows, columns, heads, dim]
            torch.testing.assert_close(by_column[0][keep], by_column[1][keep], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(by_column[2][keep], by_column[3][keep], rtol=1e-4, atol=1e-4)
            assert not by_column[0][~keep].any()  # padding columns hold zeros, not stale memory
        tokens, mask = expected.argmax(-1), torch.cat([mask, mask.new_ones(3, 1)], dim=1)
        step = reference(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, -1:] + 1,
                         past_key_values=caches[0], use_cache=True).logits[:, -1]
        torch.testing.assert_close(decoder.step(tokens, positions[:, -1] + 1, mask, caches[1]), step,
                                   rtol=1e-4, atol=1e-4)
    assert not decoder.prefills(17, caches[1])  # longer prefills: transformers' fp32 products are faster


def _generate(engine, key: str, names=("long", "short")) -> dict[str, dict]:
    sinks = {name: RecordingSink() for name in QUESTIONS}
    for name, max_tokens in (("long", 60), ("short", 20)):
        if name in names:
            engine.submit_generation(GenerationRequest(name, key, chat(QUESTIONS[name]), max_tokens=max_tokens,
                                                       temperature=0, ignore_eos=True), sinks[name])
    if "late" in names:
        assert sinks["long"].first_token.wait(30)
        engine.submit_generation(GenerationRequest("late", key, chat(QUESTIONS["late"]), max_tokens=40,
                                                   temperature=0, ignore_eos=True), sinks["late"])
    return {name: sinks[name].wait().result for name in names}


def test_the_engine_decodes_in_the_kernel_exactly_while_rows_join_and_leave(make_engine, quantized_folder,
                                                                          monkeypatch):
    from workers.serving.kv_cache import SlabLayer

    monkeypatch.setattr(SlabLayer, "growth", 8)
    engine = make_engine({"base": ModelSpec("base", "causal", str(quantized_folder))})
    results = _generate(engine, "base", names=("long", "short", "late"))

    counters = engine.counters()
    assert counters["prefill_calls"] == 2  # the late row was merged into the running batch
    assert counters["kernel_steps"] == counters["decode_steps"] > 0
    model = reference_model(quantized_folder)
    for name, result in results.items():
        assert_greedy_path(model, prompt_ids(quantized_folder, chat(QUESTIONS[name])), result["token_ids"])


def _lora(quantized_folder, root, seed: int, targets: list[str]):
    from peft import LoraConfig

    from tests.workers.serving.conftest import _random_adapter

    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    return _random_adapter(quantized_folder, config, root / f"lora-{seed}", seed=seed)


def test_rows_with_different_lora_adapters_and_none_decode_together_in_the_kernel(
        make_engine, quantized_folder, quantized_lora, tmp_path):
    second = _lora(quantized_folder, tmp_path, 42, ["gate_proj", "up_proj", "down_proj", "k_proj"])
    specs = {"base": ModelSpec("base", "causal", str(quantized_folder)),
             "a": ModelSpec("a", "causal", str(quantized_folder), str(quantized_lora), "lora"),
             "b": ModelSpec("b", "causal", str(quantized_folder), str(second), "lora")}
    engine = make_engine(specs)
    sinks = {key: RecordingSink() for key in specs}
    for key, sink in sinks.items():  # one batch: a base row and a row of each adapter
        engine.submit_generation(GenerationRequest(key, key, chat(QUESTIONS["short"]), max_tokens=24, temperature=0,
                                                   ignore_eos=True), sink)
    results = {key: sink.wait().result["token_ids"] for key, sink in sinks.items()}

    counters = engine.counters()
    assert counters["max_rows_in_step"] == 3
    assert counters["kernel_steps"] == counters["decode_steps"] > 0
    prompt = prompt_ids(quantized_folder, chat(QUESTIONS["short"]))
    for key, adapter in (("base", None), ("a", quantized_lora), ("b", second)):
        assert_greedy_path(reference_model(quantized_folder, adapter), prompt, results[key])
    assert len({tuple(tokens) for tokens in results.values()}) == 3  # each adapter changed its row


def test_an_adapter_on_the_output_layer_takes_transformers_forward(make_engine, quantized_folder, tmp_path):
    adapter = _lora(quantized_folder, tmp_path, 43, ["q_proj", "lm_head"])
    engine = make_engine({"tuned": ModelSpec("tuned", "causal", str(quantized_folder), str(adapter), "lora")})
    tuned = _generate(engine, "tuned", names=("short",))["short"]
    assert engine.counters()["decode_steps"] > 0 and engine.counters()["kernel_steps"] == 0
    assert_greedy_path(reference_model(quantized_folder, adapter),
                       prompt_ids(quantized_folder, chat(QUESTIONS["short"])), tuned["token_ids"])


@pytest.mark.parametrize("method", ["base", "prefix"])
def test_with_packed_weights_off_the_engine_gives_the_same_tokens_without_the_kernel(
        make_engine, quantized_folder, quantized_prefix, method):
    # Prefix tuning's virtual tokens sit in the cache before every row: the kernel attends to them too.
    spec = (ModelSpec("m", "causal", str(quantized_folder)) if method == "base"
            else ModelSpec("m", "causal", str(quantized_folder), str(quantized_prefix), "prefix_tuning"))
    packed_engine = make_engine({"m": spec})
    packed = _generate(packed_engine, "m")
    assert packed_engine.counters()["kernel_steps"] > 0
    plain_engine = make_engine({"m": spec}, packed_weights=False)
    plain = _generate(plain_engine, "m")
    assert plain_engine.counters()["kernel_steps"] == 0
    assert {name: result["token_ids"] for name, result in plain.items()} == {
        name: result["token_ids"] for name, result in packed.items()}


def test_a_model_with_plain_fp32_weights_never_reaches_the_kernel(make_engine, tiny_chat_folder):
    engine = make_engine({"base": ModelSpec("base", "causal", str(tiny_chat_folder))})
    _generate(engine, "base", names=("short",))
    assert engine.counters()["decode_steps"] > 0 and engine.counters()["kernel_steps"] == 0


@pytest.mark.real_model
def test_the_bundled_model_decodes_in_the_kernel_with_the_fp32_paths_tokens(db, make_engine):
    from store.catalog import sync_catalog
    from store.models import FoundationModel
    from workers.models.loading import model_folder
    from workers.serving.packed import PackedLinear

    sync_catalog()
    folder = model_folder(FoundationModel.objects.get(slug="smollm2-135m-instruct"))
    spec = ModelSpec("smol", "causal", str(folder))
    question = [{"role": "system", "content": "You are the support assistant of Acme Shoes."},
                {"role": "user", "content": "How do I clean white leather sneakers?"}]
    tokens = {}
    for packed in (True, False):
        engine = make_engine({"smol": spec}, packed_weights=packed)
        sink = RecordingSink()
        engine.submit_generation(GenerationRequest(f"p{packed}", "smol", question, max_tokens=24, temperature=0,
                                                   ignore_eos=True), sink)
        tokens[packed] = sink.wait().result["token_ids"]
        entry = next(iter(engine.cache._entries.values()))
        layers = [module for module in entry.model.modules() if isinstance(module, torch.nn.Linear)]
        if packed:  # every projection of the GGUF's Q4_1 and its Q8_0 output layer
            assert len(layers) == 211 and all(isinstance(layer, PackedLinear) for layer in layers)
            assert engine.counters()["kernel_steps"] == 23
        else:
            assert not any(isinstance(layer, PackedLinear) for layer in layers)
    assert tokens[True] == tokens[False]
