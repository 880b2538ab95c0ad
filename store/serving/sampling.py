"""Next-token choice for a whole batch at once: greedy, or temperature + top-p sampling.

Every row owns a CPU `torch.Generator` seeded from its request and draws exactly one uniform
number per step, so a seeded request produces the same text whatever it is batched with. The
draw is the only per-row Python work; everything over the vocabulary is one batched op.
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


@dataclass
class SamplingState:
    """Per-row sampling parameters of a batch, kept as device tensors between steps."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    greedy: torch.Tensor
    generators: list[torch.Generator | None]
    #: Whether any sampled row truncates with top_p < 1 (the sort over the vocabulary is skipped otherwise).
    needs_top_p: bool

    @classmethod
    def for_rows(cls, params: Sequence[tuple[float, float, torch.Generator | None]], device: Any) -> SamplingState:
        temperatures = [max(float(t), 0.0) for t, _, _ in params]
        return cls(
            temperature=torch.tensor([t if t > 0 else 1.0 for t in temperatures], device=device),
            top_p=torch.tensor([min(max(float(p), 1e-6), 1.0) for _, p, _ in params], device=device),
            greedy=torch.tensor([t <= 0 for t in temperatures], device=device),
            generators=[generator for _, _, generator in params],
            needs_top_p=any(t > 0 and p < 1.0 for t, p, _ in params),
        )

    @property
    def any_sampled(self) -> bool:
        return any(generator is not None for generator in self.generators)

    def select(self, index: torch.Tensor, keep: list[int], needs_top_p: bool) -> SamplingState:
        return SamplingState(self.temperature.index_select(0, index), self.top_p.index_select(0, index),
                             self.greedy.index_select(0, index), [self.generators[i] for i in keep], needs_top_p)

    def concat(self, other: SamplingState) -> SamplingState:
        return SamplingState(torch.cat([self.temperature, other.temperature]), torch.cat([self.top_p, other.top_p]),
                             torch.cat([self.greedy, other.greedy]), self.generators + other.generators,
                             self.needs_top_p or other.needs_top_p)


def choose_tokens(logits: torch.Tensor, state: SamplingState) -> torch.Tensor:
    """Token ids [rows] from last-position logits [rows, vocab]."""
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
