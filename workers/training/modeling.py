"""Build the model a run trains (base + tuning method) and compute its losses.

The dialogue loss has two paths. "full" runs the model's normal forward and takes the
cross-entropy over the logits of every position, like transformers' Trainer. "labelled" runs only
the inner decoder, gathers the hidden states of the positions that carry a label, and applies
the LM head to those alone: on SmolLM2's 49k-token vocabulary the head is about a fifth of the
forward FLOPs (and its logits the largest tensor of a step), while most positions of a chat
(system prompt, user turns, padding) carry no label.

The labelled path also computes a batch's shared leading tokens once. A business's rows nearly
all start with the same system prompt; a causal decoder's states over that prefix do not depend
on what follows, so the prefix runs for one row and its keys/values are repeated for the batch
(gradients flow back through the repeat). Same loss, less compute; only LoRA dropout differs,
drawing one mask for the shared prefix instead of one per row.

Prefix tuning injects its prefix through the wrapper's forward, so it always takes the full path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from finetune.spec import Hyperparameters, TrainingSpec
from workers.training.batching import Batch
from workers.training.data import IGNORE_INDEX
from workers.training.retrieval import pair_loss_sum

ADAPTER = "default"
# Below this many shared tokens, the extra forward call costs more than the prefix saves.
MIN_SHARED_PREFIX = 8


def weights_dtype(method: str, device: str) -> torch.dtype:
    """fp32 on CPU. On GPUs the frozen base of a PEFT run is stored in bf16/fp16 (half the memory);
    full tuning keeps fp32 master weights and computes in bf16 under autocast."""
    from workers.models.loading import dtype_for

    return torch.float32 if method == "full" else dtype_for(device)


def autocast(device: str) -> contextlib.AbstractContextManager:
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    from workers.models.loading import dtype_for

    return torch.autocast(device_type="cuda", dtype=dtype_for(device))


def load_base(spec: TrainingSpec, pad_token_id: int | None, folder: Path | None = None):
    """The base model's weights, or `folder`'s (a fully tuned parent a continued run starts from)."""
    from workers.models.loading import load_causal_lm, load_encoder, load_sequence_classifier

    folder = folder or spec.base_folder
    dtype = weights_dtype(spec.method, spec.device)
    if spec.task == "dialogue":
        model = load_causal_lm(folder, spec.device, dtype)
    elif spec.task == "embedding":
        model = load_encoder(folder, spec.device, dtype)  # the bare encoder the engine serves
    else:
        model = load_sequence_classifier(folder, spec.labels, spec.device, dtype, pad_token_id=pad_token_id)
    model.config.use_cache = False  # training never decodes; a cache only costs memory
    own_weights_memory(model)
    return model


@torch.no_grad()
def own_weights_memory(model) -> None:
    """Copy weights out of the memory-mapped safetensors file into process memory.

    On CPU, transformers leaves float32 weights as a private mapping of the file, that is, page
    cache: the kernel may drop those pages under memory pressure or proactive reclaim (DAMON is on
    on these machines), and a step then reads them back from disk. Training touches every weight
    on every step, so it keeps its own copy. Tied weights stay tied: the shared Parameter object
    gets the copy once.
    """
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device.type == "cpu":
            tensor.data = tensor.data.clone()


def head_name(model) -> str:
    """The classification head's attribute: "classifier" on BERT-likes, "score" on decoders."""
    return "classifier" if hasattr(model, "classifier") else "score"


def peft_config(task: str, method: str, hyper: Hyperparameters, total_steps: int, head: str):
    from peft import AdaLoraConfig, IA3Config, LoraConfig, PrefixTuningConfig, TaskType

    task_type = {"dialogue": TaskType.CAUSAL_LM, "embedding": TaskType.FEATURE_EXTRACTION}.get(task, TaskType.SEQ_CLS)
    # The classification head is new and random: it has to be trained, and saved with the adapter.
    to_save = [head] if task == "sentiment" else None
    if method == "lora":
        return LoraConfig(task_type=task_type, r=hyper.lora_r, lora_alpha=hyper.lora_alpha,
                          lora_dropout=hyper.lora_dropout, target_modules=hyper.target_modules,
                          modules_to_save=to_save)
    if method == "adalora":
        # AdaLoRA starts above the target rank and prunes down to it: warm up for 10% of the run,
        # reallocate ranks, then fine-tune the final allocation for the last 20%.
        tinit, tfinal = int(0.1 * total_steps), int(0.2 * total_steps)
        if tinit >= total_steps - tfinal:
            tinit, tfinal = 0, 0
        return AdaLoraConfig(task_type=task_type, init_r=hyper.lora_r + max(1, hyper.lora_r // 2),
                             target_r=hyper.lora_r, lora_alpha=hyper.lora_alpha, lora_dropout=hyper.lora_dropout,
                             target_modules=hyper.target_modules, total_step=total_steps, tinit=tinit,
                             tfinal=tfinal, deltaT=1, modules_to_save=to_save)
    if method == "ia3":
        # With explicit targets, peft's per-architecture feed-forward list may not be a subset of
        # them (which it rejects): treat every target as an attention-style output scale.
        feedforward: list[str] | None = [] if hyper.target_modules else None
        return IA3Config(task_type=task_type, target_modules=hyper.target_modules,
                         feedforward_modules=feedforward, modules_to_save=to_save)
    if method == "prefix_tuning":
        return PrefixTuningConfig(task_type=task_type, num_virtual_tokens=hyper.num_virtual_tokens)
    raise ValueError(f"not a PEFT method: {method}")


def build_model(spec: TrainingSpec, pad_token_id: int | None, total_steps: int):
    """Base plus tuning method, in train mode. Call after seeding: adapter and head init use the RNG."""
    full = spec.method == "full"
    base = load_base(spec, pad_token_id, spec.init_from if full else None)
    if full:
        model = base
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    else:
        from peft import PeftModel, get_peft_model

        if spec.init_from is not None:
            # Continued training: the parent's adapter (and classification head), trainable, instead of a new one.
            model = PeftModel.from_pretrained(base, str(spec.init_from), adapter_name=ADAPTER, is_trainable=True)
        else:
            model = get_peft_model(base, peft_config(spec.task, spec.method, spec.hyper, total_steps,
                                                     head_name(base)))
        # A half-precision base makes half-precision copies of the classification head; AdamW's
        # small updates would round away in bf16, so every trained tensor is kept in fp32
        # (autocast runs the matmuls in bf16 all the same).
        for parameter in trainable_parameters(model).values():
            parameter.data = parameter.data.float()
    if spec.hyper.gradient_checkpointing:
        unwrap(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def unwrap(model):
    """The transformers model under a PeftModel (with the adapter layers injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_prompt_learning(model) -> bool:
    config = getattr(model, "peft_config", {}).get(ADAPTER)
    return bool(getattr(config, "is_prompt_learning", False))


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def base_behaviour(model) -> Iterator[Any]:
    """The tuned model with its adapter switched off: the base for side-by-side comparisons."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("a fully tuned model has no adapter to disable; load the base separately")
    with model.disable_adapter():
        yield unwrap(model)


# --- losses --------------------------------------------------------------------------------


def _shifted(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels shifted left by one (token t is predicted at position t-1) and the labelled mask."""
    labels = batch.labels[:, 1:]
    return labels, labels != IGNORE_INDEX


def shared_prefix_length(batch: Batch) -> int:
    """Leading tokens all rows share, up to the position that predicts the first labelled token.

    0 when sharing would not pay: a single row, or fewer than MIN_SHARED_PREFIX common tokens.
    """
    rows, width = batch.input_ids.shape
    if rows < 2:
        return 0
    shortest = int(batch.attention_mask.sum(dim=1).min())
    same = (batch.input_ids[:, :shortest] == batch.input_ids[:1, :shortest]).all(dim=0)
    common = int(same.int().cumprod(dim=0).sum())
    labelled = (batch.labels != IGNORE_INDEX).any(dim=0).nonzero()
    first_label = int(labelled[0]) if len(labelled) else width
    # The state at position p predicts token p + 1, so the prefix stops before the first label's predictor.
    length = min(common, first_label - 1)
    return length if length >= MIN_SHARED_PREFIX else 0


def _decoder_states(causal, batch: Batch) -> tuple[torch.Tensor, int]:
    """Last hidden states from position `start` on, and `start` (the shared prefix length, or 0)."""
    decoder = causal.get_decoder()
    start = 0 if getattr(causal, "is_activation_checkpointing", False) else shared_prefix_length(batch)
    if not start:
        hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         use_cache=False).last_hidden_state
        return hidden, 0
    from transformers import DynamicCache

    cache = DynamicCache(config=causal.config)
    decoder(input_ids=batch.input_ids[:1, :start], cache=cache, use_cache=True)
    rows, width = batch.input_ids.shape
    cache.batch_repeat_interleave(rows)  # a differentiable copy: every row's gradient reaches the prefix
    positions = torch.arange(start, width, device=batch.input_ids.device).unsqueeze(0).expand(rows, -1)
    hidden = decoder(input_ids=batch.input_ids[:, start:], attention_mask=batch.attention_mask,
                     position_ids=positions, cache=cache, use_cache=True).last_hidden_state
    return hidden, start


def labelled_logits(model, batch: Batch, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, vocab) at the N positions that predict a labelled token, and those tokens."""
    if path == "labelled" and not is_prompt_learning(model):
        causal = unwrap(model)
        hidden, start = _decoder_states(causal, batch)
        labels = batch.labels[:, start + 1:]
        mask = labels != IGNORE_INDEX
        logits = causal.get_output_embeddings()(hidden[:, :-1][mask])
    else:
        labels, mask = _shifted(batch)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1][mask]
    return logits.float(), labels[mask]


def dialogue_loss_sum(model, batch: Batch, path: str) -> torch.Tensor:
    """Sum (not mean) of per-token losses, so accumulated micro-batches weigh each token equally."""
    if path == "labelled" and not is_prompt_learning(model):
        logits, targets = labelled_logits(model, batch, path)
        return F.cross_entropy(logits, targets, reduction="sum")
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    labels, _ = _shifted(batch)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def classifier_logits(model, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()


def loss_sum(model, batch: Batch, task: str, path: str) -> torch.Tensor:
    if task == "dialogue":
        return dialogue_loss_sum(model, batch, path)
    if task == "embedding":
        return pair_loss_sum(model, batch)
    return F.cross_entropy(classifier_logits(model, batch), batch.labels, reduction="sum")


def adalora_penalty(model) -> torch.Tensor:
    """AdaLoRA's orthogonality regulariser on its P and Q matrices.

    peft only adds it inside AdaLoraModel.forward when labels are passed; our losses bypass that
    forward, so it is added here, once per optimizer step.
    """
    config = model.peft_config[ADAPTER]
    terms = []
    for name, parameter in model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and ADAPTER in name:
            covariance = parameter @ parameter.T if "lora_A" in name else parameter.T @ parameter
            identity = torch.eye(*covariance.shape, device=covariance.device, dtype=covariance.dtype)
            terms.append(torch.norm(covariance - identity, p="fro"))
    if not terms:
        return torch.zeros((), device=next(model.parameters()).device)
    return config.orth_reg_weight * torch.stack(terms).mean()
