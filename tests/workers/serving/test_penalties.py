"""OpenAI's frequency and presence penalties in the batched sampler."""

import torch

from workers.serving.sampling import RowSampling, SamplingState, choose_tokens

VOCAB = 6


def greedy(frequency: float = 0.0, presence: float = 0.0) -> RowSampling:
    return RowSampling(0.0, 1.0, None, frequency, presence)


def run(state: SamplingState, logits: torch.Tensor, steps: int) -> list[list[int]]:
    chosen = [choose_tokens(logits.clone(), state).tolist() for _ in range(steps)]
    return [list(column) for column in zip(*chosen, strict=True)]


def test_a_frequency_penalty_moves_greedy_decoding_off_a_repeated_token():
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0, 0.0, 0.0]] * 2)
    state = SamplingState.for_rows([greedy(), greedy(frequency=1.5)], "cpu")
    plain, penalized = run(state, logits, 4)
    assert plain == [1, 1, 1, 1]
    # Token 1 (3.0); then 1.5 < 2.0: token 2; then 1.5 > 0.5: token 1; then 0.0 and 0.5 < 1.0: token 3.
    assert penalized == [1, 2, 1, 3]


def test_a_presence_penalty_applies_once_per_token_however_often_it_appeared():
    logits = torch.tensor([[0.0, 3.0, 2.0, 0.0, 0.0, 0.0]])
    state = SamplingState.for_rows([greedy(presence=1.5)], "cpu")
    assert run(state, logits, 4) == [[1, 2, 1, 1]]  # 1.5 vs 2.0, then 1.5 vs 0.5 for good


def test_rows_keep_their_own_counts_through_merges_and_removals():
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0, 0.0, 0.0]])
    running = SamplingState.for_rows([greedy()], "cpu")
    choose_tokens(logits.clone(), running)
    joining = SamplingState.for_rows([greedy(frequency=1.5)], "cpu")
    choose_tokens(logits.clone(), joining)  # its first token, counted
    merged = running.concat(joining)
    assert merged.counts is not None and merged.counts[0].sum() == 0 and merged.counts[1, 1] == 1
    assert choose_tokens(torch.cat([logits, logits]), merged).tolist() == [1, 2]
    alone = merged.select(torch.tensor([1]), [1], needs_top_p=False)
    assert choose_tokens(logits.clone(), alone).tolist() == [1]  # counts {1: 1, 2: 1}: 1.5 vs 0.5
    plain = merged.select(torch.tensor([0]), [0], needs_top_p=False)
    assert plain.penalties is None and plain.counts is None  # no penalized row left: no counts kept


def test_without_penalties_no_counts_are_kept():
    state = SamplingState.for_rows([greedy(), RowSampling(0.8, 0.9, torch.Generator().manual_seed(1))], "cpu")
    choose_tokens(torch.randn(2, VOCAB), state)
    assert state.penalties is None and state.counts is None


def test_the_engine_applies_each_rows_penalties_in_a_shared_batch(make_engine, tiny_chat_folder):
    from collections import Counter

    from store.inference.protocol import GenerationRequest, ModelSpec
    from tests.workers.serving.helpers import RecordingSink, chat, prompt_ids, reference_model

    spec = ModelSpec("base", "causal", str(tiny_chat_folder))
    engine = make_engine({"base": spec}, start=False)
    penalties = {"plain": (0.0, 0.0), "frequency": (2.0, 0.0), "presence": (0.0, 2.0)}
    sinks = {name: RecordingSink() for name in penalties}
    for name, (frequency, presence) in penalties.items():  # queued together: one batch
        engine.submit_generation(GenerationRequest(name, "base", chat("Where is my order?"), max_tokens=16,
                                                   temperature=0, ignore_eos=True, frequency_penalty=frequency,
                                                   presence_penalty=presence), sinks[name])
    engine.start()
    generated = {name: sink.wait().result["token_ids"] for name, sink in sinks.items()}
    assert engine.counters()["max_rows_in_step"] == 3

    model = reference_model(tiny_chat_folder)
    prompt = prompt_ids(tiny_chat_folder, chat("Where is my order?"))
    for name, (frequency, presence) in penalties.items():  # each row as plain transformers would decode it alone
        counts: Counter[int] = Counter()
        for step, token in enumerate(generated[name]):
            ids = torch.tensor([prompt + generated[name][:step]])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -1].float()
            for seen, count in counts.items():
                logits[seen] -= frequency * count + presence
            assert logits[token] >= logits.max() - 1e-3, f"{name}, step {step}"
            counts[token] += 1
    assert generated["plain"] != generated["frequency"]  # the penalties changed the text
    assert len(set(generated["presence"])) > len(set(generated["plain"]))
