"""Keys/values of recent prompts, reused by prompts that start the same way (prefix caching).

Chats to one deployment start alike: the same system prompt (with the same knowledge passages for
the same question), and every turn of a conversation repeats the whole conversation before it.
Prefilling that again costs ~2 ms a token on a 2-core CPU and is most of the time to first token
when several customers write at once. The cache keeps each prompt's keys/values per adapter (they
differ with the adapter); a new prompt takes the longest prefix it shares with one of them and
prefills only the rest, as vLLM's automatic prefix caching and llama.cpp's slot reuse do.

Bounded in bytes (least recently used go first); a prompt that another one extends is dropped for
it, so a conversation's turns keep one entry, not one per turn.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: (keys, values): one [heads, tokens, head_dim] tensor per layer each.
States = tuple[list[torch.Tensor], list[torch.Tensor]]


@dataclass
class CachedPrompt:
    adapter: str
    tokens: torch.Tensor  # int64 [tokens]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def shared_length(self, prompt: torch.Tensor, limit: int) -> int:
        """How many leading tokens (at most `limit`) this prompt has in common with `prompt`."""
        length = min(limit, len(self.tokens), len(prompt))
        differ = (self.tokens[:length] != prompt[:length]).nonzero()
        return int(differ[0, 0]) if len(differ) else length


@dataclass
class Reuse:
    """The cached states a prompt starts from: the first `length` tokens of `source`."""

    source: CachedPrompt | None = None
    length: int = 0


class PromptCache:
    #: A lookup scans the entries (~5 µs each): a small model's prompts are small, so bytes alone would let
    #: thousands of them slow every admission.
    max_entries = 256

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[int, CachedPrompt] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, adapter: str, prompt: list[int]) -> Reuse:
        """The longest cached prefix of `prompt` under `adapter`; its last token is always left to prefill
        (the model's output there is the first generated token)."""
        ids = torch.tensor(prompt)
        best, best_key = Reuse(), 0
        for key, entry in self._entries.items():
            if entry.adapter == adapter:
                length = entry.shared_length(ids, len(prompt) - 1)
                if length > best.length:
                    best, best_key = Reuse(entry, length), key
        if best.source is not None:
            self._entries.move_to_end(best_key)
        return best

    def store(self, adapter: str, prompt: list[int], states: Callable[[], States]) -> None:
        """Keep `prompt`'s states (`states()` extracts them, only when they will be kept)."""
        ids = torch.tensor(prompt)
        for key, entry in list(self._entries.items()):
            if entry.adapter != adapter:
                continue
            shared = entry.shared_length(ids, len(prompt))
            if shared == len(prompt):  # an entry holds all of this prompt already
                self._entries.move_to_end(key)
                return
            if shared == len(entry.tokens):  # this prompt extends that entry: it replaces it
                self._drop(key)
        keys, values = states()
        entry = CachedPrompt(adapter, ids, keys, values)
        if entry.nbytes > self.max_bytes:
            return
        self._entries[id(entry)] = entry
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes or len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def forget(self, adapter: str) -> None:
        """Drop an adapter's prompts (it was unloaded; its name is never reused)."""
        for key in [key for key, entry in self._entries.items() if entry.adapter == adapter]:
            self._drop(key)

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes


def reused_states(reuses: list[Reuse], width: int) -> States:
    """The reused states of a batch of prompts, left-padded with zeros to `width` tokens: per layer
    [rows, heads, width, head_dim] keys and values (the attention mask hides the padding)."""
    sample = next(r.source for r in reuses if r.source is not None)
    keys, values = [], []
    for layer, (layer_keys, layer_values) in enumerate(zip(sample.keys, sample.values, strict=True)):
        heads, _, head_dim = layer_keys.shape
        batch_keys = layer_keys.new_zeros(len(reuses), heads, width, head_dim)
        batch_values = layer_values.new_zeros(len(reuses), heads, width, head_dim)
        for row, reuse in enumerate(reuses):
            if reuse.source is not None and reuse.length:
                batch_keys[row, :, width - reuse.length:] = reuse.source.keys[layer][:, :reuse.length]
                batch_values[row, :, width - reuse.length:] = reuse.source.values[layer][:, :reuse.length]
        keys.append(batch_keys)
        values.append(batch_values)
    return keys, values


def row_states(cache: Any, row: int, columns: torch.Tensor) -> States:
    """One row's states at `columns` (a boolean mask over the sequence) from a batch cache, copied."""
    return ([layer.keys[row][:, columns] for layer in cache.layers],
            [layer.values[row][:, columns] for layer in cache.layers])
