"""Many LoRA adapters on one loaded base, applied per row in one batched forward.

peft owns the adapters (`load_adapter` / `delete_adapter` read and free them), but its own
mixed-batch path (`adapter_names=`) walks every module of the model and registers hooks on
each forward, then loops over adapters inside every layer: with 20 adapters loaded that costs
more than the base model's own decode step on a small model. So peft's adapter layers are kept
disabled (they return the base output) and a forward hook on each LoRA layer adds

    delta[row] = (x[row] @ A[slot[row]].T) @ (scaling * B[slot[row]]).T

for all rows at once with two batched matmuls over stacked adapter weights (the punica /
S-LoRA "gather then bmm" scheme). The work per layer no longer depends on how many adapters
the batch mixes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_ADAPTER = "__base__"

# Config fields that change the LoRA forward beyond `B @ A * scaling` on a Linear layer; an
# adapter using any of them is served as its own merged model instead of through the bank.
_UNBATCHABLE_FLAGS = ("use_dora", "fan_in_fan_out", "lora_bias", "use_qalora", "use_bdlora")
_UNBATCHABLE_FIELDS = ("modules_to_save", "trainable_token_indices", "alora_invocation_tokens",
                       "target_parameters", "layer_replication")


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "adapter_config.json"
    return json.loads(path.read_text())


def lora_is_batchable(config: dict[str, Any]) -> bool:
    """Whether a LoRA adapter only adds `scaling * B @ A` to Linear layers (what the bank computes)."""
    if str(config.get("peft_type", "")).upper() != "LORA":
        return False
    if config.get("bias", "none") != "none":
        return False
    if any(config.get(flag) for flag in _UNBATCHABLE_FLAGS):
        return False
    return not any(config.get(name) for name in _UNBATCHABLE_FIELDS)


@dataclass
class _Composition:
    """Stacked weights for one set of adapters: per LoRA layer, A [n+1, r, in] and B [n+1, out, r].

    The last slot is all zeros and serves base rows.
    """

    names: tuple[str, ...]
    weights: dict[int, tuple[Any, Any]]
    nbytes: int


class LoraBank:
    """Applies the adapters named per row during a forward of the model it is attached to."""

    #: Stacked compositions kept: the running batch's, and the one before it (rows come and go).
    max_compositions = 2

    def __init__(self, model: Any) -> None:
        self.model = model
        self._hooked: dict[int, Any] = {}
        self._compositions: OrderedDict[tuple[str, ...], _Composition] = OrderedDict()
        self._active: tuple[_Composition, Any] | None = None
        self._stacked_bytes = 0

    def adapters_changed(self, peft_model: Any) -> None:
        """Call after peft loaded or deleted an adapter: re-disable peft's path, hook new layers."""
        from peft.tuners.lora import LoraLayer

        peft_model.base_model.disable_adapter_layers()
        layers: list[Any] = [module for module in self.model.modules() if isinstance(module, LoraLayer)]
        for layer in layers:
            if id(layer) not in self._hooked:
                self._hooked[id(layer)] = layer.register_forward_hook(self._add_lora_delta)
        self._compositions.clear()
        self._stacked_bytes = 0
        self._active = None

    def check_supported(self, adapter_name: str) -> None:
        """Raise ValueError if peft built something for this adapter that the bank cannot compute."""
        import torch
        from peft.tuners.lora import LoraLayer
        from peft.tuners.lora.layer import Linear as LoraLinear

        for name, module in self.model.named_modules():
            if not isinstance(module, LoraLayer):
                continue
            has_adapter = adapter_name in module.lora_A or adapter_name in getattr(module, "lora_embedding_A", {})
            if not has_adapter:
                continue
            plain = (type(module) is LoraLinear and isinstance(module.get_base_layer(), torch.nn.Linear)
                     and adapter_name not in module.lora_variant)
            if not plain:
                raise ValueError(f"LoRA on {name} ({type(module).__name__}) cannot be batched")

    def activate(self, row_adapters: list[str], device: Any, also: list[str] | None = None) -> None:
        """Select the adapter of each row for the following forward calls.

        `also` names adapters of rows that will join this composition (the running batch, while
        new rows are prefilled), so prefill and the decode steps after it share one stacking.
        """
        import torch

        names = tuple(sorted({name for name in [*row_adapters, *(also or [])] if name != BASE_ADAPTER}))
        if not any(name != BASE_ADAPTER for name in row_adapters):
            self._active = None
            return
        composition = self._composition(names)
        slot = {name: i for i, name in enumerate(names)}
        base_slot = len(names)
        index = torch.tensor([slot.get(name, base_slot) for name in row_adapters], device=device)
        self._active = (composition, index)

    def selection(self) -> tuple[dict[int, tuple[Any, Any]], Any, int] | None:
        """What the rows selected last apply, for a forward that does not go through the hooks
        (fast_decode.py): the stacks per LoRA layer ({id(layer): (A, B)}), each row's slot in them, and
        the slot of rows without an adapter (all zeros). None when no row carries an adapter."""
        if self._active is None:
            return None
        composition, index = self._active
        return composition.weights, index, len(composition.names)

    def deactivate(self) -> None:
        self._active = None

    def stacked_bytes(self) -> int:
        """Working memory of the stacked copies (read from other threads, hence a plain int)."""
        return self._stacked_bytes

    def _composition(self, names: tuple[str, ...]) -> _Composition:
        composition = self._compositions.get(names)
        if composition is not None:
            self._compositions.move_to_end(names)
            return composition
        composition = self._stack(names)
        self._compositions[names] = composition
        while len(self._compositions) > self.max_compositions:
            self._compositions.popitem(last=False)
        self._stacked_bytes = sum(c.nbytes for c in self._compositions.values())
        return composition

    def _stack(self, names: tuple[str, ...]) -> _Composition:
        import torch
        from peft.tuners.lora import LoraLayer

        weights: dict[int, tuple[Any, Any]] = {}
        nbytes = 0
        layers: list[Any] = [module for module in self.model.modules() if isinstance(module, LoraLayer)]
        for module in layers:
            if not any(name in module.lora_A for name in names):
                continue
            base: Any = module.get_base_layer()
            dtype, device = base.weight.dtype, base.weight.device
            rank = max(module.r[name] for name in names if name in module.lora_A)
            stack_a = torch.zeros(len(names) + 1, rank, base.in_features, dtype=dtype, device=device)
            stack_b = torch.zeros(len(names) + 1, base.out_features, rank, dtype=dtype, device=device)
            for slot, name in enumerate(names):
                if name not in module.lora_A:
                    continue
                r = module.r[name]
                stack_a[slot, :r] = module.lora_A[name].weight.to(dtype)
                stack_b[slot, :, :r] = module.lora_B[name].weight.to(dtype) * module.scaling[name]
            weights[id(module)] = (stack_a, stack_b)
            nbytes += stack_a.numel() * stack_a.element_size() + stack_b.numel() * stack_b.element_size()
        return _Composition(names, weights, nbytes)

    def _add_lora_delta(self, module: Any, args: tuple, output: Any) -> Any:
        import torch

        active = self._active
        if active is None:
            return output
        composition, index = active
        stacks = composition.weights.get(id(module))
        if stacks is None:
            return output
        x = args[0]
        stack_a, stack_b = stacks
        hidden = torch.bmm(x.to(stack_a.dtype), stack_a.index_select(0, index).transpose(1, 2))
        return output + torch.bmm(hidden, stack_b.index_select(0, index).transpose(1, 2)).to(output.dtype)
