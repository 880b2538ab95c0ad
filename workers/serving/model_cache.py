"""Loaded models and adapters, kept in one LRU bounded by a byte budget.

A causal base serves the plain model and every batchable LoRA adapter tuned from it
("shared" entry). Methods peft cannot mix with LoRA on one model get their own entry: full
fine-tunes ("full"), IA3 / AdaLoRA / unbatchable LoRA merged into a private copy of the base
("merged"), and prefix tuning ("prefix"). Classifiers share a base per label set, since heads
with different label counts cannot live on one model. An encoder's LoRA adapter (an embedding model)
is merged too: a forward runs one adapter anyway, and a query embedded through peft's LoRA layers took
15.7 ms against 11.4 ms merged (all-MiniLM-L6-v2, one question, 2 CPU cores) — retrieval's cost in
every customer turn — for 90 MB more per embedding model.

Bytes are parameter + buffer bytes of what is loaded, estimated from safetensors headers before
loading (to evict first) and measured after. Only the engine thread mutates the cache; the lock
lets other threads read `resident()` and the byte total consistently.
"""

from __future__ import annotations

import itertools
import json
import logging
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.inference.protocol import DOES_NOT_FIT, INTERNAL, MODEL_NOT_FOUND, EngineError, ModelSpec
from workers.serving.adapters import BASE_ADAPTER, LoraBank, lora_is_batchable, read_adapter_config
from workers.serving.counters import EngineCounters

if TYPE_CHECKING:
    from workers.serving.prompt_cache import PromptCache

logger = logging.getLogger(__name__)

_SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                            "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


@dataclass
class AdapterSlot:
    spec_key: str
    name: str
    folder: str
    nbytes: int
    last_used: int = 0
    active: int = 0


@dataclass
class ModelEntry:
    key: str
    kind: str
    method: str
    model: Any
    tokenizer: Any
    nbytes: int
    labels: list[str] = field(default_factory=list)
    peft: Any = None
    bank: LoraBank | None = None
    adapters: dict[str, AdapterSlot] = field(default_factory=dict)
    prefix_length: int = 0
    last_used: int = 0
    active: int = 0
    payload: Any = None  # a search index (kind "index") instead of a model
    decoder: Any = None  # a LlamaDecoder (fast_decode.py) when the whole decode step can run in the kernel
    prompts: PromptCache | None = None  # recent prompts' keys/values, for prompts that start the same way

    @property
    def total_bytes(self) -> int:
        prompts = self.prompts.nbytes if self.prompts is not None else 0
        return self.nbytes + prompts + sum(slot.nbytes for slot in self.adapters.values())

    @property
    def context_length(self) -> int:
        config = self.model.config
        limits = [getattr(config, "max_position_embeddings", None), getattr(self.tokenizer, "model_max_length", None)]
        usable = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 10_000_000]
        return min(usable) if usable else 2048

    def prefix_cache(self, rows: int) -> Any:
        """The prefix-tuning key/values for `rows` rows (a DynamicCache), or None."""
        if not self.prefix_length:
            return None
        return self.peft.get_prompt(rows)


@dataclass
class Lease:
    """A model (and adapter) held by a request: neither is evicted until released."""

    entry: ModelEntry
    adapter: str = BASE_ADAPTER
    slot: AdapterSlot | None = None


def plan_entry(spec: ModelSpec) -> tuple[str, str]:
    """(cache key, method) for a spec: which loaded model serves it, and how it is built."""
    labels = ",".join(spec.labels)
    if spec.adapter_type == "full":
        return f"{spec.kind}|full|{spec.adapter_folder}|{labels}", "full"
    if spec.adapter_type is None or (spec.adapter_type == "lora" and (
            spec.kind == "classifier" or (spec.kind == "causal" and lora_is_batchable(_adapter_config(spec))))):
        return f"{spec.kind}|shared|{spec.base_folder}|{labels}", "shared"
    method = "prefix" if spec.adapter_type == "prefix_tuning" else "merged"
    return f"{spec.kind}|{method}|{spec.key}|{spec.adapter_folder}|{labels}", method


def _adapter_config(spec: ModelSpec) -> dict[str, Any]:
    try:
        return read_adapter_config(spec.adapter_folder or "")
    except (OSError, ValueError) as error:
        raise EngineError(MODEL_NOT_FOUND, f"{spec.key}: cannot read its adapter: {error}") from None


def module_bytes(module: Any) -> int:
    """Parameter + buffer bytes, counting tied weights once."""
    seen: set[int] = set()
    total = 0
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        pointer = tensor.data_ptr()
        if pointer not in seen:
            seen.add(pointer)
            total += tensor.numel() * tensor.element_size()
    return total


def adapter_bytes(model: Any, adapter_name: str) -> int:
    marker = f".{adapter_name}."
    return sum(p.numel() * p.element_size() for name, p in model.named_parameters() if marker in name)


def folder_tensor_bytes(folder: str | Path, element_size: int) -> int:
    """What the tensors of a folder's safetensors files take once loaded with `element_size`-byte floats."""
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for size in info["shape"]:
                numel *= size
            stored = _SAFETENSORS_DTYPE_BYTES.get(info["dtype"], 4)
            total += numel * (element_size if info["dtype"].startswith(("F", "BF")) else stored)
    if total == 0:
        total = sum(path.stat().st_size for path in Path(folder).glob("*.bin"))
    return total


class ModelCache:
    def __init__(self, device: str, dtype: Any, budget_bytes: int, counters: EngineCounters,
                 encoder_dtype: Any = None, packed_weights: bool = True, prompt_cache_bytes: int = 0) -> None:
        self.device = device
        self.dtype = dtype
        self.packed_weights = packed_weights  # decode causal models on block-quantized weights (packed.py)
        self.prompt_cache_bytes = prompt_cache_bytes  # per loaded causal model (prompt_cache.py); 0: none
        self.encoder_dtype = encoder_dtype or dtype  # encoders (embeddings) may compute in another
        self.budget_bytes = budget_bytes
        self.counters = counters
        self._entries: dict[str, ModelEntry] = {}
        self._clock = itertools.count(1)
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # --- what the engine calls -------------------------------------------------------------------

    def acquire(self, spec: ModelSpec) -> Lease:
        spec.validate()
        key, method = plan_entry(spec)
        entry = self._entries.get(key) or self._load_entry(spec, key, method)
        entry.last_used = next(self._clock)
        slot = None
        if method == "shared" and spec.adapter_type == "lora":
            slot = entry.adapters.get(spec.key)
            if slot is not None and slot.folder != spec.adapter_folder and slot.active == 0:
                self._evict_adapter(entry, slot)  # the model was re-tuned under the same key
                slot = None
            if slot is None:
                slot = self._load_adapter(entry, spec)
            slot.last_used = next(self._clock)
            slot.active += 1
        entry.active += 1
        return Lease(entry, slot.name if slot else BASE_ADAPTER, slot)

    def hold_index(self, index: Any) -> Lease:
        """Keep a search index (workers.serving.search.VectorIndex) under the budget, like a model: the
        same one is reused while its key stands; idle older ones of its family are dropped."""
        entry = self._entries.get(f"index|{index.key}")
        if entry is None:
            for stale in [e for e in self._entries.values()
                          if e.kind == "index" and e.payload.family == index.family and e.active == 0]:
                self._evict_entry(stale)
            self._make_room(index.nbytes, pinned=None)
            entry = ModelEntry(f"index|{index.key}", "index", "index", None, None, index.nbytes, payload=index)
            with self._lock:
                self._entries[entry.key] = entry
            self.counters.add("index_loads")
        entry.last_used = next(self._clock)
        entry.active += 1
        return Lease(entry)

    def peek_index(self, key: str) -> Any:
        """The index held under `key`, or None (any thread: lets a caller skip rebuilding it)."""
        with self._lock:
            entry = self._entries.get(f"index|{key}")
            return entry.payload if entry is not None else None

    def release(self, lease: Lease) -> None:
        lease.entry.active -= 1
        if lease.slot is not None:
            lease.slot.active -= 1

    def bytes_in_use(self) -> int:
        with self._lock:
            return sum(entry.total_bytes for entry in self._entries.values())

    def resident(self) -> dict[str, Any]:
        with self._lock:
            entries = [{
                "key": entry.key, "kind": entry.kind, "method": entry.method, "bytes": entry.nbytes,
                "total_bytes": entry.total_bytes, "active_rows": entry.active,
                "lora_stack_bytes": entry.bank.stacked_bytes() if entry.bank else 0,
                "adapters": [{"model_key": slot.spec_key, "name": slot.name, "bytes": slot.nbytes,
                              "active_rows": slot.active} for slot in entry.adapters.values()],
            } for entry in self._entries.values()]
        return {"entries": entries, "bytes_in_use": sum(e["total_bytes"] for e in entries),
                "budget_bytes": self.budget_bytes}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    # --- loading ---------------------------------------------------------------------------------

    def _load_entry(self, spec: ModelSpec, key: str, method: str) -> ModelEntry:
        self._make_room(self._estimate_entry(spec, method), pinned=None)
        try:
            entry = self._build_entry(spec, key, method)
        except EngineError:
            raise
        except (OSError, ValueError) as error:
            code = MODEL_NOT_FOUND if not Path(spec.base_folder).exists() else INTERNAL
            raise EngineError(code, f"{spec.key}: cannot load: {error}") from None
        with self._lock:
            self._entries[key] = entry
        self.counters.add("model_loads")
        if self._over_budget(pinned=entry):
            with self._lock:
                del self._entries[key]
            raise EngineError(DOES_NOT_FIT, f"{spec.key} takes {entry.total_bytes} bytes; the budget is "
                                            f"{self.budget_bytes} and what is loaded now is in use")
        return entry

    def _build_entry(self, spec: ModelSpec, key: str, method: str) -> ModelEntry:
        from workers.models import loading

        with loading.model_load_lock:  # peft's from_pretrained too: see loading.model_load_lock
            return self._build_entry_locked(spec, key, method)

    def _build_entry_locked(self, spec: ModelSpec, key: str, method: str) -> ModelEntry:
        import torch

        from workers.models import loading

        base = Path(spec.base_folder)
        source = Path(spec.adapter_folder) if method == "full" and spec.adapter_folder else base
        if not source.exists():
            raise EngineError(MODEL_NOT_FOUND, f"{spec.key}: {source} does not exist")
        tokenizer = loading.load_tokenizer(source if (source / "tokenizer_config.json").exists() else base)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.kind == "causal":
                model = loading.load_causal_lm(source, self.device, self.dtype)
            elif spec.kind == "encoder":
                model = loading.load_encoder(source, self.device, self.dtype)
            else:
                model = loading.load_sequence_classifier(source, spec.labels, self.device, self.dtype,
                                                         pad_token_id=tokenizer.pad_token_id)
            model.eval().requires_grad_(False)
            entry = ModelEntry(key, spec.kind, method, model, tokenizer, 0, labels=list(spec.labels))
            adapter = str(spec.adapter_folder)
            if method == "merged":
                from peft import PeftModel

                entry.model = PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()
            elif method == "prefix":
                from peft import PeftModel

                entry.peft = PeftModel.from_pretrained(model, adapter).eval()
                entry.prefix_length = int(entry.peft.peft_config["default"].num_virtual_tokens)
            elif method == "shared" and spec.kind == "causal":
                entry.bank = LoraBank(model)
            if spec.kind == "causal" and self.prompt_cache_bytes and method != "prefix":
                from workers.serving.kv_cache import new_batch_cache
                from workers.serving.prompt_cache import PromptCache

                if new_batch_cache(entry.model.config)[1]:  # its cache can take reused states
                    entry.prompts = PromptCache(self.prompt_cache_bytes)
            if spec.kind == "causal" and self.packed_weights:
                # After any merge: the packed copy must hold the weights the model computes with.
                from workers.serving.fast_decode import LlamaDecoder
                from workers.serving.packed import pack_model

                if pack_model(entry.model):
                    entry.decoder = LlamaDecoder.for_model(entry.model)
            if spec.kind == "encoder" and self.encoder_dtype != self.dtype:
                # Cast after any merge: a LoRA delta added to bfloat16 weights would lose its low bits.
                entry.model = entry.model.to(self.encoder_dtype)
        entry.nbytes = module_bytes(entry.peft or entry.model)
        return entry

    def _load_adapter(self, entry: ModelEntry, spec: ModelSpec) -> AdapterSlot:
        from workers.models import loading

        with loading.model_load_lock:
            return self._load_adapter_locked(entry, spec)

    def _load_adapter_locked(self, entry: ModelEntry, spec: ModelSpec) -> AdapterSlot:
        import torch
        from peft import PeftModel

        assert spec.adapter_folder is not None
        folder = Path(spec.adapter_folder)
        if not (folder / "adapter_config.json").exists():
            raise EngineError(MODEL_NOT_FOUND, f"{spec.key}: no adapter in {folder}")
        element_size = max(4, torch.tensor([], dtype=self.dtype).element_size())  # peft keeps adapters in fp32
        self._make_room(folder_tensor_bytes(folder, element_size), pinned=entry)
        name = f"adapter{next(self._names)}"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if entry.peft is None:
                    entry.peft = PeftModel.from_pretrained(entry.model, folder, adapter_name=name)
                else:
                    entry.peft.load_adapter(folder, adapter_name=name)
            except (OSError, ValueError, KeyError, RuntimeError) as error:
                raise EngineError(INTERNAL, f"{spec.key}: cannot attach its adapter: {error}") from None
            entry.peft.eval()
            if entry.bank is not None:
                try:
                    entry.bank.check_supported(name)
                except ValueError as error:
                    entry.peft.delete_adapter(name)
                    entry.bank.adapters_changed(entry.peft)
                    raise EngineError(INTERNAL, f"{spec.key}: {error}") from None
                entry.bank.adapters_changed(entry.peft)
        slot = AdapterSlot(spec.key, name, str(folder), adapter_bytes(entry.peft, name))
        with self._lock:
            entry.adapters[spec.key] = slot
        self.counters.add("adapter_loads")
        if self._over_budget(pinned=entry, pinned_slot=slot):
            self._evict_adapter(entry, slot, count=False)
            raise EngineError(DOES_NOT_FIT, f"{spec.key}: its adapter does not fit in the budget")
        return slot

    def _estimate_entry(self, spec: ModelSpec, method: str) -> int:
        import torch

        element_size = torch.tensor([], dtype=self.dtype).element_size()
        folder = spec.adapter_folder if method == "full" and spec.adapter_folder else spec.base_folder
        if not Path(folder).exists():
            raise EngineError(MODEL_NOT_FOUND, f"{spec.key}: {folder} does not exist")
        estimate = folder_tensor_bytes(folder, element_size)
        if method == "prefix" and spec.adapter_folder:
            estimate += folder_tensor_bytes(spec.adapter_folder, element_size)
        return estimate

    # --- budget ----------------------------------------------------------------------------------

    def _make_room(self, needed: int, pinned: ModelEntry | None) -> None:
        """Evict idle entries/adapters, least recently used first, until `needed` more bytes fit."""
        in_use = self.bytes_in_use()
        if in_use + needed <= self.budget_bytes:
            return
        candidates = self._evictable(pinned)
        if in_use - sum(size for _, size, _, _ in candidates) + needed > self.budget_bytes:
            raise EngineError(DOES_NOT_FIT, f"{needed} bytes do not fit in the budget of {self.budget_bytes} "
                                            f"bytes next to the {in_use} bytes that running requests hold")
        for _, size, entry, slot in candidates:
            if in_use + needed <= self.budget_bytes:
                break
            if slot is None:
                self._evict_entry(entry)
            else:
                self._evict_adapter(entry, slot)
            in_use -= size

    def _over_budget(self, pinned: ModelEntry, pinned_slot: AdapterSlot | None = None) -> bool:
        """After a load measured more than estimated: evict more, or report that it cannot fit."""
        excess = self.bytes_in_use() - self.budget_bytes
        if excess <= 0:
            return False
        candidates = [c for c in self._evictable(pinned) if c[3] is not pinned_slot]
        if sum(size for _, size, _, _ in candidates) < excess:
            return True
        for _, size, entry, slot in candidates:
            if excess <= 0:
                break
            if slot is None:
                self._evict_entry(entry)
            else:
                self._evict_adapter(entry, slot)
            excess -= size
        return False

    def _evictable(self, pinned: ModelEntry | None) -> list[tuple[int, int, ModelEntry, AdapterSlot | None]]:
        """(last used, bytes, entry, adapter or None for the whole entry), least recently used first."""
        candidates: list[tuple[int, int, ModelEntry, AdapterSlot | None]] = []
        for entry in self._entries.values():
            if entry is not pinned and entry.active == 0:
                candidates.append((entry.last_used, entry.total_bytes, entry, None))
                continue
            candidates.extend((slot.last_used, slot.nbytes, entry, slot)
                              for slot in entry.adapters.values() if slot.active == 0)
        return sorted(candidates, key=lambda candidate: candidate[0])

    def _evict_entry(self, entry: ModelEntry) -> None:
        logger.info("evicting %s (%d bytes)", entry.key, entry.total_bytes)
        with self._lock:
            del self._entries[entry.key]
        self.counters.add("model_evictions")
        self.counters.add("adapter_evictions", len(entry.adapters))
        entry.model = entry.peft = entry.bank = entry.payload = None
        entry.adapters.clear()
        self._release_device_memory()

    def _evict_adapter(self, entry: ModelEntry, slot: AdapterSlot, count: bool = True) -> None:
        logger.info("evicting adapter %s of %s (%d bytes)", slot.spec_key, entry.key, slot.nbytes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # peft warns when the deleted adapter was its active one
            entry.peft.delete_adapter(slot.name)
        if entry.bank is not None:
            entry.bank.adapters_changed(entry.peft)
        if entry.prompts is not None:
            entry.prompts.forget(slot.name)
        with self._lock:
            del entry.adapters[slot.spec_key]
        if count:
            self.counters.add("adapter_evictions")
        self._release_device_memory()

    def _release_device_memory(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
