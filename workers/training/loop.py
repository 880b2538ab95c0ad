"""The training loop: the one entry point the lead's Celery task calls.

`run_training` owns nothing but the model: the caller owns the job row, and hears about the run
through `Callbacks` (progress after every optimizer step, human-readable events, evaluations,
checkpoints) and steers it through `should_stop` ("cancel" or "shutdown"). A run killed at any
moment resumes from `latest_checkpoint(...)` and ends with the same weights, bit for bit on CPU,
as if it had never stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from finetune.spec import BATCHING_MODES, TrainingSpec, check_combination
from workers.training import checkpoints as ckpt
from workers.training.batching import TrainingRow, collate, epoch_batches, steps_per_epoch
from workers.training.checkpoints import LoopState, latest_checkpoint
from workers.training.data import EncodingReport, encode_dialogue, encode_pairs, encode_sentiment
from workers.training.modeling import (
    adalora_penalty,
    autocast,
    build_model,
    count_parameters,
    loss_sum,
    trainable_parameters,
)
from workers.training.reporting import Finisher, evaluate_during_training

__all__ = ["Callbacks", "Progress", "TrainingError", "TrainingResult", "latest_checkpoint", "run_training"]

MAX_GRAD_NORM = 1.0


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: float
    train_loss: float | None
    learning_rate: float
    tokens_per_second: float  # real (non-pad) tokens per second of training compute in this call
    elapsed_seconds: float  # wall time, including the calls before a resume
    eta_seconds: float | None
    real_tokens_seen: int


class Callbacks(Protocol):
    def on_progress(self, progress: Progress) -> None: ...
    def on_event(self, level: str, message: str, data: dict | None = None) -> None: ...
    def on_evaluation(self, step: int, metrics: dict) -> None: ...
    def on_checkpoint(self, step: int, path: Path) -> None: ...
    def should_stop(self) -> str | None: ...


@dataclass
class TrainingResult:
    status: str  # "completed" | "cancelled" | "interrupted" | "early_stopped"
    steps_run: int  # optimizer steps executed in this call
    final_step: int
    total_steps: int
    metrics: dict
    adapter_dir: Path | None


class TrainingError(Exception):
    """A run that cannot go on, with a message written for the person who started it."""


def cannot_write(what: str, folder: Path, error: OSError) -> TrainingError:
    """A full disk or an unwritable artifacts folder is the operator's to fix: say where and why."""
    reason = (error.strerror or str(error)).lower()
    return TrainingError(f"Cannot write {what} to {error.filename or folder}: {reason}. Check that the artifacts "
                         "folder (GPT_STORE_ARTIFACTS_DIR) is writable by the training worker and has free space.")


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def run_training(spec: TrainingSpec, callbacks: Callbacks, resume_from: Path | None = None) -> TrainingResult:
    """Train, evaluate and export; or stop early, cleanly, when asked to.

    Raises TrainingError for anything the user has to fix (invalid settings, no usable rows, out
    of memory, a diverging loss, a checkpoint from another run).
    """
    problems = check_combination(spec.task, spec.method, spec.architecture, spec.hyper)
    if spec.batching not in BATCHING_MODES:
        problems.append(f"Unknown batching {spec.batching!r}: choose one of {', '.join(BATCHING_MODES)}.")
    if spec.task == "sentiment" and len(spec.labels) < 2:
        problems.append("Sentiment needs at least two labels.")
    if problems:
        raise TrainingError(" ".join(problems))
    try:
        return _Run(spec, callbacks).execute(resume_from)
    except (RuntimeError, MemoryError) as error:
        if isinstance(error, MemoryError) or _is_out_of_memory(error):
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            hyper = spec.hyper
            raise TrainingError(
                f"Out of memory on {spec.device} with batches of {hyper.batch_size} rows of up to "
                f"{hyper.max_seq_length} tokens. Lower the batch size (raise gradient accumulation to keep the "
                "same effective batch) or the maximum sequence length."
            ) from error
        raise


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_fingerprint(spec: TrainingSpec) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the trajectory."""
    hyper = {k: v for k, v in spec.hyper.to_dict().items() if k not in ("checkpoint_every_steps", "keep_checkpoints")}
    payload = {"task": spec.task, "method": spec.method, "architecture": spec.architecture, "hyper": hyper,
               "train": spec.train_rows, "validation": spec.validation_rows, "labels": spec.labels,
               "batching": spec.batching}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _linear_schedule(warmup: int, total: int):
    def factor(step: int) -> float:
        # (step + 1): the first step already learns, unlike the usual step / warmup.
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


class _Run:
    def __init__(self, spec: TrainingSpec, callbacks: Callbacks):
        from workers.models.loading import pick_device

        self.spec = replace(spec, device=pick_device(spec.device))
        self.hyper = spec.hyper
        self.callbacks = callbacks
        self.started = time.monotonic()
        self.train_seconds = 0.0
        self.tokens_this_call = 0
        self.steps_this_call = 0

    # --- set-up ----------------------------------------------------------------------------

    def _encode(self, rows: list[dict], split: str) -> list[TrainingRow]:
        spec = self.spec
        encoded: Sequence[TrainingRow]
        try:
            if spec.task == "dialogue":
                encoded, report = encode_dialogue(self.tokenizer, rows, self.hyper.max_seq_length)
            elif spec.task == "embedding":
                encoded, report = encode_pairs(self.tokenizer, rows, self.hyper.max_seq_length)
            else:
                encoded, report = encode_sentiment(self.tokenizer, rows, spec.labels, self.hyper.max_seq_length)
        except ValueError as error:
            raise TrainingError(f"The {split} rows cannot be used: {error}.") from None
        except (KeyError, TypeError) as error:
            shape = {"dialogue": '{"messages": [{"role", "content"}, ...]}',
                     "embedding": '{"query", "passage"}'}.get(spec.task, '{"text", "label"}')
            raise TrainingError(f"A {split} row is malformed ({error!r} is missing or wrong): "
                                f"{spec.task} rows look like {shape}.") from None
        self._report_dropped(report, split)
        return list(encoded)

    def _report_dropped(self, report: EncodingReport, split: str) -> None:
        message = report.describe(split)
        if message:
            self.callbacks.on_event("warning", message, {"split": split, "truncated_away": report.truncated_away,
                                                         "without_assistant": report.without_assistant,
                                                         "unlocatable": report.unlocatable})

    def _setup(self) -> None:
        from workers.models.loading import load_tokenizer

        spec, hyper = self.spec, self.hyper
        seed_everything(hyper.seed)
        self.tokenizer = load_tokenizer(spec.base_folder)
        self.train = self._encode(spec.train_rows, "training")
        if not self.train:
            raise TrainingError("The training set is empty after tokenization: nothing to learn from. "
                                "Add rows, or raise the maximum sequence length if replies were cut off.")
        self.validation = self._encode(spec.validation_rows, "validation")
        if not self.validation and hyper.early_stopping_patience is not None:
            self.callbacks.on_event("warning", "Early stopping is off: it needs validation rows, and there are none.")
        self.steps_per_epoch = steps_per_epoch(len(self.train), hyper.batch_size, hyper.gradient_accumulation)
        self.total_steps = hyper.epochs * self.steps_per_epoch
        self.model = build_model(spec, self.tokenizer.pad_token_id, self.total_steps)
        parameters = list(trainable_parameters(self.model).values())
        decay = [p for p in parameters if p.ndim >= 2]
        no_decay = [p for p in parameters if p.ndim < 2]  # biases, norms, IA3 and AdaLoRA scaling vectors
        groups = [{"params": ps, "weight_decay": wd} for ps, wd in ((decay, hyper.weight_decay), (no_decay, 0.0)) if ps]
        self.optimizer = torch.optim.AdamW(groups, lr=hyper.learning_rate)
        warmup = math.ceil(hyper.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _linear_schedule(warmup, self.total_steps))
        self.path = "labelled" if spec.batching == "grouped" else "full"
        self.state = LoopState()
        self.fingerprint = run_fingerprint(spec)
        self.finisher = Finisher(self)
        self.last_saved_step: int | None = None
        self._plans: dict[int, list[list[list[int]]]] = {}

    def _resume(self, path: Path) -> None:
        try:
            checkpoint = ckpt.read_checkpoint(path)
        except (OSError, ValueError, KeyError) as error:
            raise TrainingError(f"Cannot resume from {path}: {error}") from None
        if checkpoint.fingerprint != self.fingerprint:
            raise TrainingError(f"Cannot resume from {path}: it was written for different data or settings.")
        ckpt.restore_weights(self.model, checkpoint.trainable)
        ckpt.restore_optimizer(self.optimizer, checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.scheduler)
        if checkpoint.adalora is not None:
            ckpt.restore_adalora(self.model, checkpoint.adalora)
        ckpt.restore_rng(checkpoint.rng)
        self.state = checkpoint.loop
        self.finisher.best = checkpoint.best
        self.last_saved_step = checkpoint.step
        self.callbacks.on_event("info", f"Resumed from the checkpoint of step {checkpoint.step} of {self.total_steps}.",
                                {"step": checkpoint.step})

    # --- the loop --------------------------------------------------------------------------

    def execute(self, resume_from: Path | None) -> TrainingResult:
        self._setup()
        if resume_from is not None:
            self._resume(Path(resume_from))
        else:
            trainable, total = count_parameters(self.model)
            self.callbacks.on_event(
                "info", f"Training {self.spec.method} on {len(self.train)} rows for {self.total_steps} steps: "
                        f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%) are trainable.",
                {"trainable_parameters": trainable, "total_parameters": total, "total_steps": self.total_steps})
        status = self._loop()
        try:
            return self.finisher.finish(status)
        except OSError as error:
            raise cannot_write("the tuned model", self.spec.output_dir, error) from None

    def _plan(self, epoch: int) -> list[list[list[int]]]:
        """Optimizer steps of an epoch, each a list of micro-batches of row indices."""
        if epoch not in self._plans:
            # Retrieval pairs are batched at random: a pair's length is mostly its passage's, so length
            # grouping would line up the questions of one passage, which are not each other's negatives.
            pairs = self.spec.task == "embedding"
            batches = epoch_batches([row.length for row in self.train], self.hyper.batch_size, self.hyper.seed, epoch,
                                    "baseline" if pairs else self.spec.batching, even=pairs)
            accumulation = self.hyper.gradient_accumulation
            self._plans = {epoch: [batches[i:i + accumulation] for i in range(0, len(batches), accumulation)]}
        return self._plans[epoch]

    def _loop(self) -> str:
        state, patience = self.state, self.hyper.early_stopping_patience
        if patience is not None and state.evals_without_improvement >= patience:
            return "early_stopped"  # resumed from the checkpoint written as patience ran out
        while state.step < self.total_steps:
            verdict = self.callbacks.should_stop()
            if verdict == "cancel":
                self.callbacks.on_event("warning", f"Cancelled at step {state.step} of {self.total_steps}.")
                return "cancelled"
            if verdict == "shutdown":
                self.save_checkpoint()
                self.callbacks.on_event("warning", f"Stopped for a shutdown at step {state.step}; "
                                                   "it resumes from the checkpoint just written.")
                return "interrupted"
            plan = self._plan(state.epoch)
            train_loss = self._step(plan[state.cursor])
            state.cursor += 1
            end_of_epoch = state.cursor == len(plan)
            if end_of_epoch:
                state.epoch, state.cursor = state.epoch + 1, 0
            state.loss_history.append({"step": state.step, "train_loss": train_loss})
            self._report_progress(train_loss)
            stop_early = False
            every = self.hyper.eval_every_steps
            due = (every is not None and state.step % every == 0) or (every is None and end_of_epoch)
            if self.validation and (due or state.step == self.total_steps):
                stop_early = evaluate_during_training(self)
            if state.step % self.hyper.checkpoint_every_steps == 0:
                self.save_checkpoint()
            if stop_early:
                return "early_stopped"
        return "completed"

    def _step(self, micro_batches: list[list[int]]) -> float:
        spec, model = self.spec, self.model
        batches = [collate([self.train[i] for i in rows], self.tokenizer.pad_token_id, spec.task)
                   for rows in micro_batches]
        denominator = max(1, sum(batch.targets for batch in batches))
        learning_rate = self.scheduler.get_last_lr()[0]
        adalora = spec.method == "adalora"
        started = time.perf_counter()
        total = 0.0
        for batch in batches:
            with autocast(spec.device):
                loss = loss_sum(model, batch.to(spec.device), spec.task, self.path) / denominator
            total += float(loss.detach())
            if adalora:
                loss = loss + adalora_penalty(model) / len(batches)
            loss.backward()
        if not math.isfinite(total):
            raise TrainingError(f"Training diverged: the loss became {total} at step {self.state.step + 1}. "
                                "Lower the learning rate.")
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
        self.optimizer.step()
        self.state.step += 1
        if adalora:
            model.base_model.update_and_allocate(self.state.step)  # needs the gradients: before zero_grad
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if spec.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.train_seconds += time.perf_counter() - started
        real_tokens = sum(batch.real_tokens for batch in batches)
        self.tokens_this_call += real_tokens
        self.state.real_tokens_seen += real_tokens
        self.steps_this_call += 1
        self.learning_rate = float(learning_rate)
        return total

    def elapsed(self) -> float:
        return self.state.elapsed_seconds + (time.monotonic() - self.started)

    def _report_progress(self, train_loss: float) -> None:
        state = self.state
        call_seconds = time.monotonic() - self.started
        remaining = self.total_steps - state.step
        self.callbacks.on_progress(Progress(
            step=state.step, total_steps=self.total_steps, epoch=state.step / self.steps_per_epoch,
            train_loss=train_loss, learning_rate=self.learning_rate,
            tokens_per_second=self.tokens_this_call / self.train_seconds if self.train_seconds else 0.0,
            elapsed_seconds=self.elapsed(),
            eta_seconds=call_seconds / self.steps_this_call * remaining if self.steps_this_call else None,
            real_tokens_seen=state.real_tokens_seen,
        ))

    def save_checkpoint(self) -> None:
        if self.last_saved_step == self.state.step:
            return
        saved_elapsed = self.state.elapsed_seconds
        self.state.elapsed_seconds = self.elapsed()
        try:
            path = ckpt.save_checkpoint(self.spec.checkpoint_dir, self.state, self.model, self.optimizer,
                                        self.scheduler, fingerprint=self.fingerprint, best=self.finisher.best,
                                        adalora=self.spec.method == "adalora", keep=self.hyper.keep_checkpoints)
        except OSError as error:
            raise cannot_write("checkpoint", self.spec.checkpoint_dir, error) from None
        finally:
            self.state.elapsed_seconds = saved_elapsed
        self.last_saved_step = self.state.step
        self.callbacks.on_checkpoint(self.state.step, path)
