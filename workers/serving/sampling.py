"""Next-token choice for a whole batch at once: greedy, or temperature + top-p sampling, after
OpenAI's frequency and presence penalties.

Every row owns a CPU `torch.Generator` seeded from its request and draws exactly one uniform
number per step, so a seeded request produces the same text whatever it is batched with. The
draw is the only per-row Python work; everything over the vocabulary is one batched op.

Penalties follow OpenAI's definition over the tokens generated so far (not the prompt):
logit -= frequency_penalty * count + presence_penalty * (count > 0). The counts ([rows, vocab])
exist only while some row of the batch has a penalty.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


def row_generator(seed: int | None, temperature: float) -> torch.Generator | None:
    """A generator for a sampled row; greedy rows draw nothing."""
    if temperature <= 0:
        return None
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else random.getrandbits(63))
    return generator


@dataclass(frozen=True)
class RowSampling:
    """One request's sampling parameters."""

    temperature: float
    top_p: float
    generator: torch.Generator | None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


@dataclass
class SamplingState:
    """Per-row sampling parameters of a batch, kept as device tensors between steps."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    greedy: torch.Tensor
    generators: list[torch.Generator | None]
    #: Whether any sampled row truncates with top_p < 1 (the sort over the vocabulary is skipped otherwise).
    needs_top_p: bool
    #: [rows, 2]: frequency and presence penalty per row; None when no row has one.
    penalties: torch.Tensor | None = None
    #: [rows, vocab]: how often each row generated each token; kept only while penalties exist.
    counts: torch.Tensor | None = None

    @classmethod
    def for_rows(cls, params: Sequence[RowSampling], device: Any) -> SamplingState:
        temperatures = [max(float(p.temperature), 0.0) for p in params]
        penalized = any(p.frequency_penalty or p.presence_penalty for p in params)
        return cls(
            temperature=torch.tensor([t if t > 0 else 1.0 for t in temperatures], device=device),
            top_p=torch.tensor([min(max(float(p.top_p), 1e-6), 1.0) for p in params], device=device),
            greedy=torch.tensor([t <= 0 for t in temperatures], device=device),
            generators=[p.generator for p in params],
            needs_top_p=any(t > 0 and p.top_p < 1.0 for t, p in zip(temperatures, params, strict=True)),
            penalties=torch.tensor([[float(p.frequency_penalty), float(p.presence_penalty)] for p in params],
                                   device=device) if penalized else None,
        )

    @property
    def any_sampled(self) -> bool:
        return any(generator is not None for generator in self.generators)

    def select(self, index: torch.Tensor, keep: list[int], needs_top_p: bool) -> SamplingState:
        penalties = counts = None
        if self.penalties is not None:
            penalties = self.penalties.index_select(0, index)
            if bool(penalties.any()):  # the penalized rows may all have finished
                counts = None if self.counts is None else self.counts.index_select(0, index)
            else:
                penalties = None
        return SamplingState(self.temperature.index_select(0, index), self.top_p.index_select(0, index),
                             self.greedy.index_select(0, index), [self.generators[i] for i in keep], needs_top_p,
                             penalties, counts)

    def concat(self, other: SamplingState) -> SamplingState:
        penalties = counts = None
        if self.penalties is not None or other.penalties is not None:
            penalties = torch.cat([_or_zeros(self.penalties, len(self.generators), 2, other.penalties),
                                   _or_zeros(other.penalties, len(other.generators), 2, self.penalties)])
            if self.counts is not None or other.counts is not None:
                vocab = (self.counts if self.counts is not None else other.counts).shape[1]  # type: ignore[union-attr]
                counts = torch.cat([_or_zeros(self.counts, len(self.generators), vocab, other.counts),
                                    _or_zeros(other.counts, len(other.generators), vocab, self.counts)])
        return SamplingState(torch.cat([self.temperature, other.temperature]), torch.cat([self.top_p, other.top_p]),
                             torch.cat([self.greedy, other.greedy]), self.generators + other.generators,
                             self.needs_top_p or other.needs_top_p, penalties, counts)


def _or_zeros(tensor: torch.Tensor | None, rows: int, columns: int, like: torch.Tensor | None) -> torch.Tensor:
    """Rows without penalties count as zeros (their counts never matter: their penalty is 0)."""
    if tensor is not None:
        return tensor
    assert like is not None
    return like.new_zeros(rows, columns)


def penalize(logits: torch.Tensor, state: SamplingState) -> torch.Tensor:
    if state.penalties is None:
        return logits
    if state.counts is None:  # the first token of these rows: nothing generated yet
        state.counts = logits.new_zeros(logits.shape, dtype=torch.float32)
        return logits
    frequency, presence = state.penalties[:, 0:1], state.penalties[:, 1:2]
    return logits.float() - frequency * state.counts - presence * (state.counts > 0).float()


def choose_tokens(logits: torch.Tensor, state: SamplingState) -> torch.Tensor:
    """Token ids [rows] from last-position logits [rows, vocab]; updates the state's token counts."""
    logits = penalize(logits, state)
    tokens = _choose(logits, state)
    if state.counts is not None:
        state.counts[torch.arange(len(tokens), device=tokens.device), tokens] += 1
    return tokens


def _choose(logits: torch.Tensor, state: SamplingState) -> torch.Tensor:
    greedy_tokens = logits.argmax(dim=-1)
    if not state.any_sampled:
        return greedy_tokens
    draws = [torch.rand((), generator=g) if g is not None else torch.zeros(()) for g in state.generators]
    uniform = torch.stack(draws).to(logits.device).unsqueeze(1)
    probs = torch.softmax(logits.float() / state.temperature.unsqueeze(1), dim=-1)
    if state.needs_top_p:
        probs, order = probs.sort(dim=-1, descending=True)
        cumulative = probs.cumsum(dim=-1)
        # Keep the smallest head of the distribution whose mass reaches top_p (always the top token).
        probs = probs * ((cumulative - probs) < state.top_p.unsqueeze(1))
    else:
        order = None
    cumulative = probs.cumsum(dim=-1)
    # Inverse-CDF sampling: the first token whose cumulative mass exceeds u * total.
    picks = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True)
    picks = picks.clamp_(max=logits.shape[-1] - 1)
    sampled = picks if order is None else order.gather(1, picks)
    return torch.where(state.greedy, greedy_tokens, sampled.squeeze(1))
