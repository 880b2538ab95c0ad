"""The artifacts a run leaves: a standard PEFT adapter folder (or a full model folder), a zip of
it, and on request a merged stand-alone model.

Every folder loads with plain transformers/peft calls (``PeftModel.from_pretrained(base, folder)``
or ``from_pretrained(folder)``), so a business can take its model elsewhere. ``gpt_store.json``
carries what those calls cannot tell: the task, the method, the label order, the base.
Weights are safetensors only.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from finetune.spec import Hyperparameters
from workers.training.modeling import unwrap

MANIFEST = "gpt_store.json"
MANIFEST_FORMAT = 1
MERGEABLE_PEFT_TYPES = ("LORA", "ADALORA", "IA3")


def write_manifest(folder: Path, *, task: str, method: str, labels: Sequence[str], architecture: str,
                   hyper: Hyperparameters | None = None, extra: dict | None = None) -> None:
    manifest = {
        "format": MANIFEST_FORMAT, "task": task, "method": method, "labels": list(labels),
        "base_architecture": architecture, "adapter": method != "full",
        "hyperparameters": hyper.to_dict() if hyper else None, **(extra or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False))


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def export_model(model, tokenizer, output_dir: Path, *, task: str, method: str, labels: Sequence[str],
                 architecture: str, hyper: Hyperparameters, extra: dict | None = None) -> Path:
    """Save the tuned adapter (PEFT methods) or the whole model (full) with tokenizer and manifest."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Training switched the cache off; a served model wants it back on.
    unwrap(model).config.use_cache = True
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    write_manifest(output_dir, task=task, method=method, labels=labels, architecture=architecture, hyper=hyper,
                   extra=extra)
    return output_dir


def zip_folder(folder: Path) -> Path:
    """`<folder>.zip` next to the folder, files at the archive root; written aside, then renamed."""
    folder = Path(folder)
    target = folder.with_name(f"{folder.name}.zip")
    partial = folder.with_name(f".{folder.name}.zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    os.replace(partial, target)
    return target


def merge_and_export(base_folder: Path, adapter_folder: Path, out_dir: Path, task: str,
                     labels: Sequence[str]) -> Path:
    """Fold a LoRA-style adapter into its base and save a stand-alone model (no peft needed to serve it).

    Prefix tuning cannot be merged: its prefix is extra attention input, not a weight delta.
    """
    import torch
    from peft import PeftConfig, PeftModel

    from workers.models.loading import load_causal_lm, load_encoder, load_sequence_classifier, load_tokenizer

    adapter_folder, out_dir = Path(adapter_folder), Path(out_dir)
    config = PeftConfig.from_pretrained(str(adapter_folder))
    peft_type = str(getattr(config.peft_type, "value", config.peft_type))
    if peft_type not in MERGEABLE_PEFT_TYPES:
        raise ValueError(f"a {peft_type} adapter cannot be merged into its base; only LoRA, AdaLoRA and IA3 can")
    has_tokenizer = (adapter_folder / "tokenizer_config.json").exists()
    tokenizer = load_tokenizer(adapter_folder if has_tokenizer else Path(base_folder))
    if task == "dialogue":
        base = load_causal_lm(Path(base_folder), "cpu", torch.float32)
    elif task == "embedding":
        base = load_encoder(Path(base_folder), "cpu", torch.float32)
    else:
        base = load_sequence_classifier(Path(base_folder), list(labels), "cpu", torch.float32,
                                        pad_token_id=tokenizer.pad_token_id)
    merged = PeftModel.from_pretrained(base, str(adapter_folder)).merge_and_unload()
    merged.config.use_cache = True
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    manifest = read_manifest(adapter_folder) if (adapter_folder / MANIFEST).exists() else {}
    write_manifest(out_dir, task=task, method="full", labels=labels,
                   architecture=manifest.get("base_architecture", base.config.architectures[0]),
                   hyper=Hyperparameters.from_dict(manifest["hyperparameters"]) if manifest.get("hyperparameters")
                   else None,
                   extra={"merged_from": manifest.get("method", peft_type.lower()),
                          **({"retrieval_calibration": manifest["retrieval_calibration"]}
                             if manifest.get("retrieval_calibration") else {})})
    return out_dir
