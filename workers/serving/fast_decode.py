"""A whole decode step (or a short prefill) of a Llama-family model in one call into the packed kernel
(`llama_forward`).

transformers runs a decode step of SmolLM2 as ~750 small torch operations with Python around each: on two
CPU cores that costs more than the step's arithmetic (~27 ms against ~14 ms of packed matrix products a
token). `LlamaDecoder` hands the kernel the packed weights once, and per step only the embedded tokens,
the rotary cos/sin (from the model's own rotary module, so they match), the running batch's mask and its
KV slabs, which the kernel extends in place. It serves rows of the base model (and of merged, full and
prefix-tuned models) when every layer was packed, and rows with LoRA adapters from the bank on the seven
projections (`takes`: their stacks, pointed at once per composition); other adapters, other architectures
and GPUs take transformers' forward.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import torch

from workers.serving.kv_cache import SlabLayer
from workers.serving.packed import MAX_PACKED_ROWS, PackedLinear

logger = logging.getLogger(__name__)

_pointer = ctypes.c_void_p
_PROJECTIONS = (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                ("o", "self_attn.o_proj"), ("gate", "mlp.gate_proj"), ("up", "mlp.up_proj"),
                ("down", "mlp.down_proj"))


class _Weight(ctypes.Structure):
    _fields_ = [("levels", _pointer), ("scales", _pointer), ("minimums", _pointer), ("in_features", ctypes.c_int),
                ("out_features", ctypes.c_int), ("lora_a", _pointer), ("lora_b", _pointer), ("rank", ctypes.c_int)]


class _Layer(ctypes.Structure):
    _fields_ = [*((name, _Weight) for name, _ in _PROJECTIONS), ("attn_norm", _pointer), ("mlp_norm", _pointer),
                ("key_slab", _pointer), ("value_slab", _pointer), ("capacity", ctypes.c_int)]


class _Model(ctypes.Structure):
    _fields_ = [("layers", ctypes.c_int), ("hidden", ctypes.c_int), ("heads", ctypes.c_int),
                ("kv_heads", ctypes.c_int), ("head_dim", ctypes.c_int), ("intermediate", ctypes.c_int),
                ("vocab", ctypes.c_int), ("eps", ctypes.c_float), ("final_norm", _pointer), ("head", _Weight),
                ("layer", ctypes.POINTER(_Layer)), ("slots", _pointer), ("base_slot", ctypes.c_int)]


def _weight(module: PackedLinear) -> _Weight:
    minimums = getattr(module, "packed_minimums", None)
    return _Weight(module.packed_levels.data_ptr(), module.packed_scales.data_ptr(),
                   minimums.data_ptr() if minimums is not None else None, module.in_features, module.out_features,
                   None, None, 0)


def _norm_weight(norm: Any) -> torch.Tensor | None:
    weight = getattr(norm, "weight", None)
    eps = getattr(norm, "variance_epsilon", None)
    if type(norm).__name__ != "LlamaRMSNorm" or weight is None or eps is None or weight.dtype != torch.float32:
        return None
    return weight.detach().contiguous()


class LlamaDecoder:
    """The kernel's view of one packed Llama model; `step` decodes one token for every row."""

    def __init__(self, model: Any, kernel: ctypes.CDLL, layers: list[dict[str, Any]], final_norm: torch.Tensor) -> None:
        config = model.config
        self.model, self.kernel = model, kernel
        self.embed, self.rotary = model.model.embed_tokens, model.model.rotary_emb
        self._keep = [final_norm, *(layer["attn_norm"] for layer in layers), *(layer["mlp_norm"] for layer in layers)]
        self._layers = (_Layer * len(layers))()
        for slot, layer in zip(self._layers, layers, strict=True):
            for name, _ in _PROJECTIONS:
                setattr(slot, name, _weight(layer[name]))
            slot.attn_norm, slot.mlp_norm = layer["attn_norm"].data_ptr(), layer["mlp_norm"].data_ptr()
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.vocab = model.lm_head.out_features
        self._model = _Model(len(layers), config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
                             head_dim, config.intermediate_size, self.vocab, float(config.rms_norm_eps),
                             final_norm.data_ptr(), _weight(model.lm_head), self._layers)
        self._lora_for: Any = None  # the bank's stacks the projections point at now (none: None)
        self._lora_ready: bool = True
        kernel.llama_forward.argtypes = [ctypes.POINTER(_Model), ctypes.c_int, _pointer, _pointer, _pointer,
                                         _pointer, _pointer, _pointer, ctypes.c_int, ctypes.c_int, _pointer, _pointer,
                                         ctypes.c_int]
        kernel.llama_forward.restype = ctypes.c_int

    @classmethod
    def for_model(cls, model: Any) -> LlamaDecoder | None:
        """A decoder if `model` is a Llama whose every projection and output layer were packed; else None."""
        config = getattr(model, "config", None)
        inner = getattr(model, "model", None)
        if (config is None or getattr(config, "model_type", "") != "llama" or inner is None
                or getattr(config, "hidden_act", "") != "silu" or getattr(config, "pretraining_tp", 1) != 1
                or not isinstance(getattr(model, "lm_head", None), PackedLinear) or model.lm_head.bias is not None
                or config.num_attention_heads % config.num_key_value_heads):
            return None
        final_norm = _norm_weight(inner.norm)
        if final_norm is None:
            return None
        layers = []
        for decoder_layer in inner.layers:
            modules = {name: decoder_layer.get_submodule(path) for name, path in _PROJECTIONS}
            if not all(type(module) is PackedLinear and module.bias is None for module in modules.values()):
                return None
            attn_norm, mlp_norm = _norm_weight(decoder_layer.input_layernorm), _norm_weight(
                decoder_layer.post_attention_layernorm)
            if attn_norm is None or mlp_norm is None:
                return None
            layers.append({**modules, "attn_norm": attn_norm, "mlp_norm": mlp_norm})
        kernel = model.lm_head.kernel
        if not hasattr(kernel, "llama_forward"):
            return None
        return cls(model, kernel, layers, final_norm)

    def accepts(self, rows: int, cache: Any) -> bool:
        layers = getattr(cache, "layers", None)
        return (0 < rows <= MAX_PACKED_ROWS and layers is not None and len(layers) == len(self._layers)
                and all(type(layer) is SlabLayer and layer.keys is not None for layer in layers))

    def takes(self, selection: tuple[dict[int, tuple[Any, Any]], Any, int] | None) -> bool:
        """Whether the kernel can apply the LoRA bank's selection (`LoraBank.selection`): adapters on the
        seven projections only (one on the output layer needs transformers' forward)."""
        if selection is None:
            return True
        stacks = selection[0]
        if stacks is not self._lora_for:
            self._point_at(stacks)
        return self._lora_ready

    def _point_at(self, stacks: dict[int, tuple[Any, Any]]) -> None:
        """Point each projection at its slice of the bank's stacks (once per composition, not per step)."""
        projections: dict[int, _Weight] = {}
        for slot, decoder_layer in zip(self._layers, self.model.model.layers, strict=True):
            for name, path in _PROJECTIONS:
                weight = getattr(slot, name)
                weight.lora_a = weight.lora_b = None
                weight.rank = 0
                projections[id(decoder_layer.get_submodule(path))] = weight
        self._lora_for, self._lora_ready = stacks, set(stacks) <= set(projections)
        if not self._lora_ready:
            return
        for module_id, (stack_a, stack_b) in stacks.items():
            weight = projections[module_id]
            if stack_a.dtype != torch.float32 or not (stack_a.is_contiguous() and stack_b.is_contiguous()):
                self._lora_ready = False
                return
            weight.lora_a, weight.lora_b, weight.rank = stack_a.data_ptr(), stack_b.data_ptr(), stack_a.shape[1]

    def step(self, input_ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: Any,
             selection: tuple[dict[int, tuple[Any, Any]], Any, int] | None = None) -> torch.Tensor:
        """Logits [rows, vocab] of the next token of each row; the cache grows by one column, as with
        transformers. `mask` [rows, columns] already holds the new column; `selection` is the LoRA bank's
        for these rows (`takes` it first)."""
        rows, columns = mask.shape
        length = columns - 1
        for layer in cache.layers:
            if layer.keys.shape[-2] != length or layer.keys.shape[0] != rows:
                raise ValueError(f"cache holds {tuple(layer.keys.shape)}, the mask {rows} x {columns}")
        every_row = torch.arange(rows)
        return self._forward(input_ids.reshape(rows), positions.reshape(rows), every_row,
                             torch.full((rows,), length), mask, every_row, cache, 1, selection)

    def prefills(self, tokens: int, cache: Any) -> bool:
        """Whether a prefill of `tokens` prompt tokens in all into `cache` runs here: up to MAX_PACKED_ROWS, where
        transformers' fixed ~30 ms of Python and small operations outweigh the kernel's rows (a longer prefill
        is compute-bound, and transformers' fp32 products are faster there)."""
        layers = getattr(cache, "layers", None)
        return (0 < tokens <= MAX_PACKED_ROWS and layers is not None and len(layers) == len(self._layers)
                and all(type(layer) is SlabLayer for layer in layers))

    def prefill(self, input_ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: Any,
                selection: tuple[dict[int, tuple[Any, Any]], Any, int] | None = None) -> torch.Tensor:
        """Logits [rows, vocab] after each row's prompt tokens: `input_ids` and `positions` [rows, width] hold
        them left-padded, `mask` [rows, held + width] the columns of the states already in `cache` (held, as
        after `SlabLayer.set_states`; or none) and then the tokens'. The cache grows by `width` columns; a
        padding column's states are zeros (the mask hides them)."""
        rows, width = input_ids.shape
        held = mask.shape[1] - width
        for layer in cache.layers:
            if layer.keys is None:  # nothing reused: an empty slab of the right shape
                empty = torch.zeros(rows, self._model.kv_heads, 0, self._model.head_dim)
                layer.set_states(empty, empty.clone())
            if layer.keys.shape[-2] != held or layer.keys.shape[0] != rows:
                raise ValueError(f"cache holds {tuple(layer.keys.shape)}, the mask {rows} x {held + width}")
        row_of, offset = mask[:, held:].nonzero(as_tuple=True)  # one item per prompt token, row by row
        last_item = torch.cumsum(mask[:, held:].sum(dim=1), dim=0) - 1  # left padding: each row's last is its end
        return self._forward(input_ids[row_of, offset], positions[row_of, offset], row_of, held + offset,
                             mask[row_of], last_item, cache, width, selection)

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, slab_row: torch.Tensor, column: torch.Tensor,
                 mask: torch.Tensor, output_item: torch.Tensor, cache: Any, new_columns: int,
                 selection: tuple[dict[int, tuple[Any, Any]], Any, int] | None) -> torch.Tensor:
        items = len(tokens)
        if selection is not None:
            if not self.takes(selection):
                raise ValueError("the kernel cannot apply these adapters")
            slots = selection[1].to(torch.int64)[slab_row].contiguous()
            self._model.slots, self._model.base_slot = slots.data_ptr(), selection[2]
        else:
            self._model.slots, self._model.base_slot = None, -1
        for slot, layer in zip(self._layers, cache.layers, strict=True):
            slot.key_slab, slot.value_slab, slot.capacity = layer.room_for(new_columns, clear=new_columns > 1)
        hidden = self.embed(tokens).float().contiguous()
        cos, sin = self.rotary(hidden, positions.reshape(items, 1))
        cos, sin = cos.reshape(items, -1).contiguous(), sin.reshape(items, -1).contiguous()
        keep = mask.to(torch.int64).contiguous()
        slab_row, column = slab_row.to(torch.int64).contiguous(), column.to(torch.int64).contiguous()
        output_item = output_item.to(torch.int64).contiguous()
        logits = torch.empty(len(output_item), self.vocab, dtype=torch.float32)
        status = self.kernel.llama_forward(ctypes.byref(self._model), items, hidden.data_ptr(), cos.data_ptr(),
                                           sin.data_ptr(), slab_row.data_ptr(), column.data_ptr(), keep.data_ptr(),
                                           keep.shape[1], len(output_item), output_item.data_ptr(),
                                           logits.data_ptr(), torch.get_num_threads())
        if status != 0:
            raise MemoryError("the decode step could not allocate its scratch memory")
        for layer in cache.layers:
            layer.extend(new_columns)
        return logits
