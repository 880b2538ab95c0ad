"""The running batch's KV cache: a transformers DynamicCache whose layers write into slabs.

DynamicLayer appends a decoded token with `torch.cat`, which copies the whole cache of every
layer at every step: for 16 rows of 1,000-token chats on SmolLM2 that is ~0.7 GB of memory
traffic per step, more than reading the weights. A slab layer keeps keys/values in a buffer with
room to grow and writes each new token in place; `keys`/`values` are views of the filled part,
so everything that reads a DynamicLayer (masks, sequence length, attention) works unchanged.
Rows joining or leaving rebuild the slab once (`set_states`), which is rare next to steps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class SlabLayer(DynamicLayer):
    #: Tokens of room added whenever the slab fills up; regrowing copies the cache once per this many steps.
    growth = 128

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key_slab: torch.Tensor | None = None
        self._value_slab: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized or self._key_slab is None or self.keys is None or self.values is None:
            return self.set_states(key_states, value_states)
        length = self.keys.shape[-2]
        needed = length + key_states.shape[-2]
        if needed > self._key_slab.shape[-2]:
            self.set_states(self.keys, self.values, extra=key_states.shape[-2])
        assert self._key_slab is not None and self._value_slab is not None
        self._key_slab[:, :, length:needed] = key_states
        self._value_slab[:, :, length:needed] = value_states
        self.keys = key_view = self._key_slab[:, :, :needed]
        self.values = value_view = self._value_slab[:, :, :needed]
        return key_view, value_view

    def set_states(self, keys: torch.Tensor, values: torch.Tensor, extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the cached states (after rows joined or left), keeping room to grow."""
        length = keys.shape[-2]
        capacity = length + extra + self.growth
        self._key_slab = keys.new_empty(*keys.shape[:2], capacity, keys.shape[-1])
        self._value_slab = values.new_empty(*values.shape[:2], capacity, values.shape[-1])
        self._key_slab[:, :, :length] = keys
        self._value_slab[:, :, :length] = values
        self.keys = key_view = self._key_slab[:, :, :length]
        self.values = value_view = self._value_slab[:, :, :length]
        self.device = keys.device
        self.is_initialized = True
        return key_view, value_view

    # --- for a decode step that writes the slab itself (fast_decode.py) ----------------------------

    def room_for(self, tokens: int, clear: bool = False) -> tuple[int, int, int]:
        """Make room for `tokens` more columns without changing what is cached; (key slab address, value
        slab address, capacity in columns) for a kernel that writes them. `clear` zeroes those columns first
        (a kernel that leaves some unwritten: masked, but transformers' attention multiplies them by 0)."""
        assert self.keys is not None and self.values is not None
        length = self.keys.shape[-2]
        if self._key_slab is None or length + tokens > self._key_slab.shape[-2]:
            self.set_states(self.keys, self.values, extra=tokens)
        assert self._key_slab is not None and self._value_slab is not None
        if clear:
            self._key_slab[:, :, length:length + tokens] = 0
            self._value_slab[:, :, length:length + tokens] = 0
        return self._key_slab.data_ptr(), self._value_slab.data_ptr(), self._key_slab.shape[-2]

    def extend(self, tokens: int) -> None:
        """Take in `tokens` columns that were written into the slab past the cached ones."""
        assert self._key_slab is not None and self._value_slab is not None and self.keys is not None
        length = self.keys.shape[-2] + tokens
        self.keys = self._key_slab[:, :, :length]
        self.values = self._value_slab[:, :, :length]

    def reset(self) -> None:
        self._key_slab = self._value_slab = None
        super().reset()


def new_batch_cache(config: Any) -> tuple[Any, bool]:
    """(cache for a prefill, whether rows of different batches can be merged into it).

    Sliding-window and other special layers keep bookkeeping that a concatenation along the
    batch would break: such models keep transformers' layers and batch only rows that start together.
    """
    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [SlabLayer() for _ in cache.layers]
        return cache, True
    return cache, False


def to_slab_cache(cache: Any) -> Any:
    """The same states in slab layers (prefix tuning hands over a prefilled plain DynamicCache)."""
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        return cache
    slabs = []
    for layer in cache.layers:
        slab = SlabLayer()
        slab.set_states(layer.keys, layer.values)
        slabs.append(slab)
    cache.layers = slabs
    return cache


def left_pad(tensor: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    if amount == 0:
        return tensor
    padding = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [amount, 0]
    return F.pad(tensor, padding)


def _set(layer: Any, keys: torch.Tensor, values: torch.Tensor) -> None:
    if isinstance(layer, SlabLayer):
        layer.set_states(keys, values)
    else:
        layer.keys, layer.values = keys, values


def merge_caches(running: Any, joining: Any, running_length: int, joining_length: int) -> None:
    """Append `joining`'s rows to `running`, left-padding the shorter one along the sequence."""
    length = max(running_length, joining_length)
    pad_running, pad_joining = length - running_length, length - joining_length
    for old, new in zip(running.layers, joining.layers, strict=True):
        _set(old, torch.cat([left_pad(old.keys, pad_running, 2), left_pad(new.keys, pad_joining, 2)]),
             torch.cat([left_pad(old.values, pad_running, 2), left_pad(new.values, pad_joining, 2)]))


def keep_rows(cache: Any, index: torch.Tensor, first_column: int) -> None:
    """Keep the rows in `index`, dropping sequence columns before `first_column` (no row attends to them)."""
    for layer in cache.layers:
        _set(layer, layer.keys.index_select(0, index)[:, :, first_column:],
             layer.values.index_select(0, index)[:, :, first_column:])
