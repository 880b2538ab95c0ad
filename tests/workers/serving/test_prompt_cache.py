"""Prompts that start like an earlier one prefill only the rest (prompt_cache.py), decoding as if whole."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from store.inference.protocol import GenerationRequest, ModelSpec  # noqa: E402
from tests.workers.serving.helpers import RecordingSink, assert_greedy_path, chat, prompt_ids, reference_model  # noqa: E402
from workers.serving.prompt_cache import PromptCache  # noqa: E402

CACHE_BYTES = 64 * 1024**2
FIRST = "Where is my order? I ordered last week."
REPLY = {"role": "assistant", "content": "It ships tomorrow."}
FOLLOW_UP = "And can I change the address?"


@pytest.fixture(scope="module")
def quantized_folder(tmp_path_factory):
    from tests.tiny_models import build_quantized_chat_model

    return build_quantized_chat_model(tmp_path_factory.mktemp("quantized-chat"))


def _run(engine, key: str, messages: list[dict], max_tokens: int = 16, request_id: str = "r") -> list[int]:
    sink = RecordingSink()
    engine.submit_generation(GenerationRequest(request_id, key, messages, max_tokens=max_tokens, temperature=0,
                                               ignore_eos=True), sink)
    result = sink.wait().result
    assert result is not None, sink.error
    return result["token_ids"]


def _shared(a: list[int], b: list[int]) -> int:
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return length


@pytest.mark.parametrize("folder_fixture", ["tiny_chat_folder", "quantized_folder"])
def test_the_next_turn_of_a_conversation_prefills_only_its_new_tokens_and_decodes_the_same(
        make_engine, request, folder_fixture):
    folder = request.getfixturevalue(folder_fixture)
    engine = make_engine({"m": ModelSpec("m", "causal", str(folder))}, prompt_cache_bytes=CACHE_BYTES)
    first_turn = chat(FIRST)
    second_turn = [*first_turn, REPLY, {"role": "user", "content": FOLLOW_UP}]
    first, second = prompt_ids(folder, first_turn), prompt_ids(folder, second_turn)
    assert second[:len(first)] == first  # the chat template renders a conversation's turns as a growing prefix

    first_tokens = _run(engine, "m", first_turn, request_id="one")
    assert engine.counters()["prompt_tokens_reused"] == 0
    second_tokens = _run(engine, "m", second_turn, request_id="two")

    # The first turn's prompt and its reply were kept; the second turn's prompt has the first prompt and
    # then REPLY's text (which the model did not write), so it reuses the first prompt and no more than
    # what the model's reply and REPLY's tokens have in common.
    kept = first + first_tokens[:-1]
    assert engine.counters()["prompt_tokens_reused"] == _shared(kept, second) >= len(first)
    model = reference_model(folder)
    assert_greedy_path(model, first, first_tokens)
    assert_greedy_path(model, second, second_tokens)
    if folder_fixture == "quantized_folder":
        assert engine.counters()["kernel_steps"] == engine.counters()["decode_steps"] > 0


def test_rows_reusing_different_lengths_and_none_prefill_together_and_decode_the_same(
        make_engine, quantized_folder):
    engine = make_engine({"m": ModelSpec("m", "causal", str(quantized_folder))}, prompt_cache_bytes=CACHE_BYTES)
    seed_reply = _run(engine, "m", chat(FIRST), request_id="seed")
    conversations = {
        "next-turn": [*chat(FIRST), REPLY, {"role": "user", "content": FOLLOW_UP}],  # all of the first prompt
        "same-system": chat("Do you sell socks?"),  # the system prompt only
        "other-system": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello"}],
    }
    prompts = {name: prompt_ids(quantized_folder, messages) for name, messages in conversations.items()}
    seed = prompt_ids(quantized_folder, chat(FIRST))
    kept = seed + seed_reply[:-1]  # what the cache holds after the seed request
    sinks = {name: RecordingSink() for name in conversations}
    prefills = engine.counters()["prefill_calls"]
    with engine.one_admission():  # all three prefill as one batch
        for name, messages in conversations.items():
            engine.submit_generation(GenerationRequest(name, "m", messages, max_tokens=12, temperature=0,
                                                       ignore_eos=True), sinks[name])
    results = {name: sink.wait().result["token_ids"] for name, sink in sinks.items()}

    counters = engine.counters()
    assert counters["prefill_calls"] == prefills + 1
    assert counters["prompt_tokens_reused"] == sum(_shared(kept, prompt) for prompt in prompts.values())
    assert 0 < _shared(kept, prompts["same-system"]) < len(seed) <= _shared(kept, prompts["next-turn"])
    model = reference_model(quantized_folder)
    for name, prompt in prompts.items():
        assert_greedy_path(model, prompt, results[name])


def test_a_finished_reply_is_kept_with_its_prompt_for_the_next_turn(make_engine, quantized_folder, tiny_chat_folder):
    engine = make_engine({"m": ModelSpec("m", "causal", str(quantized_folder)),
                          "other": ModelSpec("other", "causal", str(tiny_chat_folder))},
                         prompt_cache_bytes=CACHE_BYTES)
    reply = _run(engine, "m", chat(FIRST), max_tokens=10, request_id="one")
    entry = engine.cache._entries[next(key for key in engine.cache._entries if str(quantized_folder) in key)]
    # The reply is kept after its sink heard the end, in the same engine iteration: a request to another model
    # starts in a later one.
    _run(engine, "other", chat(FIRST), max_tokens=1, request_id="two")
    prompt = prompt_ids(quantized_folder, chat(FIRST))
    conversation = prompt + reply[:-1]  # the last token was never fed back: its states do not exist yet
    [kept] = entry.prompts._entries.values()  # the prompt's own entry was replaced by the longer one
    assert kept.tokens.tolist() == conversation
    assert kept.keys[0].shape[1] == len(conversation)
    assert entry.prompts.lookup("__base__", [*conversation, 7, 8]).length == len(conversation)


def test_states_are_reused_only_under_the_adapter_that_computed_them(make_engine, tiny_chat_folder, lora_folders):
    specs = {"base": ModelSpec("base", "causal", str(tiny_chat_folder)),
             "tuned": ModelSpec("tuned", "causal", str(tiny_chat_folder), str(lora_folders[0]), "lora")}
    engine = make_engine(specs, prompt_cache_bytes=CACHE_BYTES)
    _run(engine, "base", chat(FIRST), request_id="base")
    tuned = _run(engine, "tuned", chat(FIRST), request_id="tuned-1")
    assert engine.counters()["prompt_tokens_reused"] == 0
    again = _run(engine, "tuned", chat(FIRST), request_id="tuned-2")

    prompt = prompt_ids(tiny_chat_folder, chat(FIRST))
    assert engine.counters()["prompt_tokens_reused"] == len(prompt) - 1  # its last token is always prefilled
    assert again == tuned
    assert_greedy_path(reference_model(tiny_chat_folder, lora_folders[0]), prompt, again)


def test_prefix_tuned_models_and_a_zero_budget_keep_no_prompts(make_engine, tiny_chat_folder, method_folders):
    specs = {"prefix": ModelSpec("prefix", "causal", str(tiny_chat_folder), str(method_folders["prefix_tuning"]),
                                 "prefix_tuning"),
             "base": ModelSpec("base", "causal", str(tiny_chat_folder))}
    cached = make_engine(specs, prompt_cache_bytes=CACHE_BYTES)
    uncached = make_engine(specs)
    for engine, key in ((cached, "prefix"), (uncached, "base")):
        tokens = [_run(engine, key, chat(FIRST), request_id=f"{key}-{i}") for i in range(2)]
        assert tokens[0] == tokens[1]
        assert engine.counters()["prompt_tokens_reused"] == 0
        assert engine.counters()["prefill_calls"] == 2


# --- the cache itself ---------------------------------------------------------------------------------------

def _states(tokens: int, value: float = 1.0):
    def make():
        return ([torch.full((2, tokens, 4), value)], [torch.full((2, tokens, 4), -value)])
    return make


def test_a_longer_prompt_replaces_the_one_it_extends_and_the_least_recent_go_first():
    per_token = 2 * 2 * 4 * 4  # keys and values, 2 heads x 4 dims of float32
    cache = PromptCache(max_bytes=10 * per_token)
    cache.store("a", [1, 2, 3], _states(3))
    cache.store("a", [1, 2, 3, 4, 5], _states(5))  # extends [1, 2, 3]: replaces it
    assert len(cache) == 1 and cache.nbytes == 5 * per_token
    cache.store("a", [1, 2], _states(2))  # already held by [1, 2, 3, 4, 5]
    assert len(cache) == 1

    cache.store("b", [1, 2, 3, 4], _states(4))  # another adapter: its own entry
    assert cache.lookup("a", [1, 2, 3, 9]).length == 3
    cache.store("a", [7, 7, 7], _states(3))  # over the bound: the least recently used ("b") goes
    assert cache.nbytes <= cache.max_bytes
    assert cache.lookup("b", [1, 2, 3, 4, 5]).length == 0
    assert cache.lookup("a", [1, 2, 3, 4, 5, 6]).length == 5


def test_a_lookup_leaves_the_last_token_and_an_unloaded_adapter_is_forgotten():
    cache = PromptCache(max_bytes=1024**2)
    cache.store("a", [1, 2, 3], _states(3))
    reuse = cache.lookup("a", [1, 2, 3])
    assert reuse.length == 2 and reuse.source is not None
    assert cache.lookup("a", [5, 2, 3]).length == 0
    cache.store("a", [9] * 20_000, _states(20_000))  # bigger than the whole bound: not kept
    assert len(cache) == 1
    cache.forget("a")
    assert len(cache) == 0 and cache.nbytes == 0 and cache.lookup("a", [1, 2, 3, 4]).source is None


def test_what_is_left_of_cached_prompts_prefills_in_the_kernel_with_lora_rows(make_engine, quantized_folder,
                                                                               tmp_path):
    from peft import LoraConfig

    from tests.workers.serving.conftest import _random_adapter

    adapter = _random_adapter(quantized_folder, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False), tmp_path / "lora", seed=44)
    specs = {"base": ModelSpec("base", "causal", str(quantized_folder)),
             "tuned": ModelSpec("tuned", "causal", str(quantized_folder), str(adapter), "lora")}
    engine = make_engine(specs, prompt_cache_bytes=CACHE_BYTES)
    for key in specs:
        _run(engine, key, chat(FIRST), request_id=f"seed-{key}")
    before = engine.counters()
    sinks = {key: RecordingSink() for key in specs}
    with engine.one_admission():  # each row has one token left to prefill, under its own adapter
        for key, sink in sinks.items():
            engine.submit_generation(GenerationRequest(key, key, chat(FIRST), max_tokens=12, temperature=0,
                                                       ignore_eos=True), sink)
    results = {key: sink.wait().result["token_ids"] for key, sink in sinks.items()}

    counters = engine.counters()
    prompt = prompt_ids(quantized_folder, chat(FIRST))
    assert counters["prefill_calls"] == before["prefill_calls"] + 1
    assert counters["kernel_prefills"] == before["kernel_prefills"] + 1
    assert counters["prompt_tokens_reused"] - before["prompt_tokens_reused"] == 2 * (len(prompt) - 1)
    assert_greedy_path(reference_model(quantized_folder), prompt, results["base"])
    assert_greedy_path(reference_model(quantized_folder, adapter), prompt, results["tuned"])
    assert results["base"] != results["tuned"]


def test_the_number_of_prompts_is_bounded_too(monkeypatch):
    monkeypatch.setattr(PromptCache, "max_entries", 3)
    cache = PromptCache(max_bytes=1024**2)
    for first in range(5):
        cache.store("a", [first, 1, 2], _states(3))
    assert len(cache) == 3
    assert cache.lookup("a", [1, 1, 2, 3]).length == 0  # the oldest two went
    assert cache.lookup("a", [4, 1, 2, 3]).length == 3
