"""Load catalog models in a worker: device choice, GGUF materialization, tokenizers, models.

Worker-only (imports torch/transformers inside functions). Training and serving both load
base models through here, so a model loads the same way everywhere.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from store.catalog import CatalogError, download_from_hub, resolve_source
from store.models import FoundationModel

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# One model load at a time per process: two `from_pretrained` calls running concurrently in one worker
# (the engine thread and the start-up thread that converts the bundled GGUF) can corrupt tied weights.
model_load_lock = threading.RLock()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference and preference != "auto":
        return preference
    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_for(device: str) -> torch.dtype:
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# CPU flags that compute bfloat16 in hardware (not emulated through float32).
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def encoder_dtype_for(device: str, choice: str | None = None) -> torch.dtype:
    """What encoders (embeddings, retrieval) compute in: `choice` (INFERENCE_ENCODER_DTYPE) "float32",
    "bfloat16", or "auto" (the default): bfloat16 on a CPU that computes it natively, else as dtype_for.

    Measured on this project's CPU (avx512_bf16): a customer's question embeds in 6-7 ms against 9-10 ms
    alone on one thread, 9-10 against 10-17 ms inside the worker (retrieval's ~25 ms), and ingestion
    runs ~1.8x faster. Through the product's retrieval and decision code on Acme and the 34 help centres
    the bundled retrieval model was not tuned on (2,177 answerable and 1,410 unanswerable questions),
    bfloat16 questions against float32 passages (a knowledge base embedded before) and bfloat16 for both
    gave the same answered-right / refused / "I don't know" shares at the default threshold as float32
    (docs/knowledge.md); a near tie can still go the other way. GPUs compute in bfloat16 or float16
    anyway."""
    import torch

    choice = (choice or settings.INFERENCE_ENCODER_DTYPE).lower()
    if choice in ("float32", "bfloat16"):
        return getattr(torch, choice)
    if device.startswith("cuda") or not (_cpu_flags() & _NATIVE_BF16_FLAGS):
        return dtype_for(device)
    return torch.bfloat16


def configure_torch_threads(threads: int | None = None) -> None:
    import torch

    threads = settings.TORCH_THREADS if threads is None else threads
    if threads and threads > 0:
        torch.set_num_threads(threads)


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered while its size and mtime stay the same.

    Every request resolves its model folder; hashing the ~100 MB GGUF each time added ~90 ms to
    each request's time to first token (bench/serve.py).
    """
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    known = _sha256_by_file.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _sha256_by_file[key] = digest.hexdigest()
    return _sha256_by_file[key]


_sha256_by_file: dict[tuple[str, int, int], str] = {}


def _materialized_marker(folder: Path) -> Path:
    return folder / "gpt-store-materialized.json"


def materialize_gguf(source_folder: Path, gguf_file: str, cache_dir: Path | None = None) -> Path:
    """De-quantize a GGUF file once into a float safetensors folder, keyed by the file's sha256.

    Loading the GGUF takes ~25-35 s on two cores; the safetensors copy loads in under a second.
    A lock file makes concurrent workers wait for one conversion instead of racing.
    """
    cache_dir = Path(cache_dir or settings.MODEL_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(source_folder / gguf_file)
    target = cache_dir / f"{Path(gguf_file).stem}-{sha[:16]}"
    if _materialized_marker(target).exists():
        return target
    with open(cache_dir / f".{target.name}.lock", "w") as lock, model_load_lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _materialized_marker(target).exists():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.monotonic()
        logger.warning("Materializing %s into %s (once; ~30 s on a laptop CPU)", gguf_file, target)
        tokenizer = AutoTokenizer.from_pretrained(source_folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source_folder, gguf_file=gguf_file, dtype=torch.float32)
        # A model loaded from a quantized GGUF is flagged as quantized, and save_pretrained refuses
        # (Trainer would refuse full tuning too). The weights are already de-quantized floats.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = cache_dir / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        _materialized_marker(staging).write_text(json.dumps({"gguf": gguf_file, "sha256": sha,
                                                              "seconds": round(time.monotonic() - started, 1)}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        logger.warning("Materialized %s in %.1f s", gguf_file, time.monotonic() - started)
    return target


def model_folder(foundation: FoundationModel) -> Path:
    """A local transformers folder (config + safetensors + tokenizer) for a catalog entry."""
    resolved = resolve_source(foundation)
    return _folder_of(resolved, foundation.slug)


def _folder_of(resolved, slug: str) -> Path:
    if resolved.base is not None:
        return materialize_adapter(_folder_of(resolved.base, slug), resolved.folder, slug)
    if resolved.gguf_file:
        assert resolved.folder is not None
        return materialize_gguf(resolved.folder, resolved.gguf_file)
    if resolved.hub_id:
        return download_from_hub(resolved.hub_id)
    assert resolved.folder is not None
    return resolved.folder


def materialize_adapter(base_folder: Path, adapter_folder: Path, slug: str, cache_dir: Path | None = None) -> Path:
    """Merge a bundled adapter into its base once, into a plain model folder keyed by both files' hashes,
    so the engine loads it like any base model (no adapter arithmetic on every forward)."""
    cache_dir = Path(cache_dir or settings.MODEL_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256((file_sha256(adapter_folder / "adapter_model.safetensors")
                             + file_sha256(next(iter(sorted(base_folder.glob("*.safetensors")))))).encode())
    target = cache_dir / f"{slug}-{digest.hexdigest()[:16]}"
    if _materialized_marker(target).exists():
        return target
    with open(cache_dir / f".{target.name}.lock", "w") as lock, model_load_lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _materialized_marker(target).exists():
            return target
        from peft import PeftModel
        from transformers import AutoModel, AutoTokenizer

        started = time.monotonic()
        model = PeftModel.from_pretrained(AutoModel.from_pretrained(base_folder), adapter_folder).merge_and_unload()
        staging = cache_dir / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        AutoTokenizer.from_pretrained(base_folder).save_pretrained(staging)
        for extra in ("gpt_store.json", "README.md"):
            if (adapter_folder / extra).exists():
                shutil.copy(adapter_folder / extra, staging / extra)
        _materialized_marker(staging).write_text(json.dumps({"adapter": str(adapter_folder), "base": str(base_folder),
                                                              "seconds": round(time.monotonic() - started, 1)}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        logger.info("merged %s into %s in %.1f s", adapter_folder, target, time.monotonic() - started)
    return target


def load_tokenizer(foundation: FoundationModel | Path):
    from transformers import AutoTokenizer

    folder = foundation if isinstance(foundation, Path) else model_folder(foundation)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_causal_lm(foundation: FoundationModel | Path, device: str = "cpu", dtype: Any = None):
    from transformers import AutoModelForCausalLM

    folder = foundation if isinstance(foundation, Path) else model_folder(foundation)
    try:
        with model_load_lock:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or dtype_for(device))
    except (OSError, ValueError) as error:
        raise CatalogError(f"cannot load a causal LM from {folder}: {error}") from None
    return model.to(device)  # type: ignore[arg-type]


def load_encoder(foundation: FoundationModel | Path, device: str = "cpu", dtype: Any = None):
    """The bare encoder (no head): embeddings are pooled from its last hidden states."""
    from transformers import AutoModel

    folder = foundation if isinstance(foundation, Path) else model_folder(foundation)
    try:
        with model_load_lock:
            model = AutoModel.from_pretrained(folder, dtype=dtype or dtype_for(device))
    except (OSError, ValueError) as error:
        raise CatalogError(f"cannot load an encoder from {folder}: {error}") from None
    return model.to(device)  # type: ignore[arg-type]


def load_sequence_classifier(
    foundation: FoundationModel | Path,
    labels: list[str],
    device: str = "cpu",
    dtype: Any = None,
    pad_token_id: int | None = None,
):
    """A base with a fresh classification head for `labels` (the head is what tuning trains)."""
    from transformers import AutoModelForSequenceClassification

    folder = foundation if isinstance(foundation, Path) else model_folder(foundation)
    with model_load_lock:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            dtype=dtype or dtype_for(device),
        )
    if model.config.pad_token_id is None and pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model.to(device)  # type: ignore[arg-type]
