"""Checkpoints a crashed or stopped run resumes from, bit for bit.

A checkpoint holds everything the next optimizer step depends on: trainable weights, optimizer
and scheduler state, the RNG states (torch, Python `random`, numpy; dropout draws from torch's),
AdaLoRA's importance scores, and the loop's own state (step, batch cursor, early-stopping state,
loss history). Tensors go to safetensors and everything else to JSON: nothing is ever pickled,
so a checkpoint can be read without trusting it.

Each checkpoint also holds a servable ``model/`` folder: the adapter in peft's own format (or, for a
full fine-tune, the whole model in transformers' format), so the engine serves a checkpoint as a
model, `ft:…:ckpt-step-<n>`, with the loaders it uses for tuned models (workers/serving/resolver.py).

Each one is written into a hidden ``.step-<n>.partial`` folder, flushed, marked complete and
then renamed to ``step-<n>``: a rename is atomic, so a process killed mid-write leaves no folder
that looks complete. Older checkpoints are pruned to the last `keep`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from finetune.checkpoint_models import SERVABLE_FOLDER

FORMAT_VERSION = 1
COMPLETE_MARKER = "complete.json"
_STEP_FOLDER = re.compile(r"^step-(\d+)$")


@dataclass
class LoopState:
    """Where the loop is; saved as JSON in every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    cursor: int = 0  # optimizer steps done inside `epoch`
    best_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    loss_history: list[dict] = field(default_factory=list)  # {"step", "train_loss"}
    eval_history: list[dict] = field(default_factory=list)  # {"step", "validation_loss", ...}
    real_tokens_seen: int = 0
    elapsed_seconds: float = 0.0  # wall time of all calls before this one


@dataclass
class Checkpoint:
    """A checkpoint read back from disk, ready to be restored into a freshly built run."""

    path: Path
    step: int
    fingerprint: str
    loop: LoopState
    trainable: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    optimizer: dict
    scheduler: dict
    rng: dict
    adalora: dict | None


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None. Half-written folders are never returned."""
    return max(_complete_checkpoints(Path(checkpoint_dir)), key=_step_of, default=None)


def _complete_checkpoints(checkpoint_dir: Path) -> list[Path]:
    if not checkpoint_dir.is_dir():
        return []
    return [path for path in checkpoint_dir.iterdir()
            if _STEP_FOLDER.match(path.name) and (path / COMPLETE_MARKER).exists()]


def _step_of(path: Path) -> int:
    match = _STEP_FOLDER.match(path.name)
    assert match is not None
    return int(match.group(1))


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, str(path))
    _fsync(path)


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, allow_nan=False))
    _fsync(path)


# --- what goes in --------------------------------------------------------------------------


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _rng_payload() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = cast(tuple, np.random.get_state(legacy=True))
    return tensors, {"python": [version, list(internal), gauss],
                     "numpy": [kind, keys.tolist(), position, has_gauss, cached]}


def _adalora_payload(model) -> tuple[dict[str, torch.Tensor], dict]:
    allocator = model.base_model.rankallocator
    tensors = {}
    for kind in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
        tensors.update({f"{kind}.{name}": value for name, value in getattr(allocator, kind).items()})
    return tensors, {"rank_pattern": model.peft_config["default"].rank_pattern}


def _write_servable(folder: Path, model) -> None:
    """The checkpoint as the engine loads a tuned model: a peft adapter folder (its trainable weights only,
    small), or for a full fine-tune the model's own folder (as large as its trainable.safetensors)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    use_cache = inner.config.use_cache
    inner.config.use_cache = True  # a served model decodes with a cache; training switched it off
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        inner.config.use_cache = use_cache
    for path in folder.iterdir():
        _fsync(path)


def save_checkpoint(checkpoint_dir: Path, state: LoopState, model, optimizer, scheduler, *, fingerprint: str,
                    best: dict[str, torch.Tensor] | None, adalora: bool, keep: int) -> Path:
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"step-{state.step}"
    partial = checkpoint_dir / f".step-{state.step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    _write_tensors(partial / "trainable.safetensors",
                   {name: p for name, p in model.named_parameters() if p.requires_grad})
    if best is not None:
        _write_tensors(partial / "best.safetensors", best)
    optimizer_tensors, optimizer_meta = _optimizer_payload(optimizer)
    _write_tensors(partial / "optimizer.safetensors", optimizer_tensors)
    rng_tensors, rng_meta = _rng_payload()
    _write_tensors(partial / "rng.safetensors", rng_tensors)
    adalora_meta = None
    if adalora:
        adalora_tensors, adalora_meta = _adalora_payload(model)
        _write_tensors(partial / "adalora.safetensors", adalora_tensors)
    _write_servable(partial / SERVABLE_FOLDER, model)
    _write_json(partial / "state.json", {
        "format": FORMAT_VERSION, "step": state.step, "fingerprint": fingerprint, "loop": asdict(state),
        "optimizer": optimizer_meta, "scheduler": scheduler.state_dict(), "rng": rng_meta, "adalora": adalora_meta,
    })
    _write_json(partial / COMPLETE_MARKER, {"step": state.step})
    _fsync(partial)
    if final.exists():
        shutil.rmtree(final)  # the same step saved again (e.g. shutdown right after a periodic save)
    partial.rename(final)
    _fsync(checkpoint_dir)
    prune_checkpoints(checkpoint_dir, keep)
    return final


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; remove older ones and leftovers of crashed writes."""
    complete = sorted(_complete_checkpoints(checkpoint_dir), key=_step_of)
    for path in complete[:-keep] if keep > 0 else complete:
        shutil.rmtree(path, ignore_errors=True)
    for path in checkpoint_dir.iterdir():
        crashed_write = path.name.startswith(".step-") and path.name.endswith(".partial")
        incomplete = _STEP_FOLDER.match(path.name) and not (path / COMPLETE_MARKER).exists()
        if crashed_write or incomplete:
            shutil.rmtree(path, ignore_errors=True)


# --- what comes out ------------------------------------------------------------------------


def read_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    if not (path / COMPLETE_MARKER).exists():
        raise ValueError(f"{path} is not a complete checkpoint")
    meta = json.loads((path / "state.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} was written by an incompatible version (format {meta.get('format')})")
    best = load_file(str(path / "best.safetensors")) if (path / "best.safetensors").exists() else None
    adalora = None
    if meta["adalora"] is not None:
        adalora = {"tensors": load_file(str(path / "adalora.safetensors")), **meta["adalora"]}
    return Checkpoint(
        path=path, step=meta["step"], fingerprint=meta["fingerprint"], loop=LoopState(**meta["loop"]),
        trainable=load_file(str(path / "trainable.safetensors")), best=best,
        optimizer={"tensors": load_file(str(path / "optimizer.safetensors")), **meta["optimizer"]},
        scheduler=meta["scheduler"], rng={"tensors": load_file(str(path / "rng.safetensors")), **meta["rng"]},
        adalora=adalora,
    )


def restore_weights(model, weights: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    missing = sorted(set(weights) - set(parameters))
    if missing:
        raise ValueError(f"checkpoint weights do not fit this model: {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)


def restore_optimizer(optimizer: torch.optim.Optimizer, payload: dict) -> None:
    state: dict[int, dict] = {}
    for key, tensor in payload["tensors"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    for key, value in payload["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group
              for group in payload["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def restore_rng(payload: dict) -> None:
    torch.set_rng_state(payload["tensors"]["torch"])
    cuda_keys = sorted((k for k in payload["tensors"] if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    cuda = [payload["tensors"][key] for key in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = payload["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = payload["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def restore_adalora(model, payload: dict) -> None:
    allocator = model.base_model.rankallocator
    device = next(model.parameters()).device
    for kind in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
        prefix = f"{kind}."
        setattr(allocator, kind, {key[len(prefix):]: value.to(device)
                                  for key, value in payload["tensors"].items() if key.startswith(prefix)})
    model.peft_config["default"].rank_pattern = payload["rank_pattern"]
