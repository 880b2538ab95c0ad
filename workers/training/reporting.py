"""Validation during training (with early stopping) and the end of a run (report and export).

Kept apart from the loop so the loop reads as what it is: step, report, evaluate, checkpoint.
Functions here take the loop's private run object; they are not a public interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import torch

from workers.training.checkpoints import restore_weights
from workers.training.data import Encoded, EncodedPair
from workers.training.evaluation import (
    classifier_scores,
    evaluate_classifier,
    evaluate_dialogue,
    evaluate_retrieval,
    language_model_scores,
    pair_scores,
)
from workers.training.export import export_model
from workers.training.modeling import load_base, trainable_parameters

if TYPE_CHECKING:
    from workers.training.loop import TrainingResult, _Run

EVAL_BATCH_SIZE = 16


def validation_metrics(run: _Run) -> dict:
    spec, pad = run.spec, run.tokenizer.pad_token_id
    batch_size = max(run.hyper.batch_size, EVAL_BATCH_SIZE)
    if spec.task == "embedding":
        # The in-batch loss depends on how many negatives a batch holds: batches of the training size.
        pairs = pair_scores(run.model, cast(Sequence[EncodedPair], run.validation), pad,
                            batch_size=run.hyper.batch_size, device=spec.device)
        return {"validation_loss": pairs["loss"], "validation_recall_at_1": pairs["recall_at_1"]}
    encoded = cast(Sequence[Encoded], run.validation)
    if spec.task == "dialogue":
        scores = language_model_scores(run.model, encoded, pad, batch_size=batch_size, device=spec.device,
                                       path=run.path)
        return {"validation_loss": scores["loss"], "validation_perplexity": scores["perplexity"],
                "validation_token_accuracy": scores["token_accuracy"]}
    loss, predictions = classifier_scores(run.model, encoded, pad, batch_size=batch_size, device=spec.device)
    correct = sum(guess == row.labels[0] for guess, row in zip(predictions, encoded, strict=True))
    return {"validation_loss": loss, "validation_accuracy": correct / len(encoded)}


def evaluate_during_training(run: _Run) -> bool:
    """Validate, track the best weights, and say whether patience has run out."""
    state, patience = run.state, run.hyper.early_stopping_patience
    metrics = validation_metrics(run)
    loss = metrics["validation_loss"]
    if state.best_loss is None or loss < state.best_loss:
        state.best_loss, state.best_step, state.evals_without_improvement = loss, state.step, 0
        if patience is not None:
            run.finisher.best = {name: p.detach().cpu().clone() for name, p in trainable_parameters(run.model).items()}
    else:
        state.evals_without_improvement += 1
    state.eval_history.append({"step": state.step, **metrics})
    run.callbacks.on_evaluation(state.step, {**metrics, "best_validation_loss": state.best_loss,
                                             "best_step": state.best_step})
    if patience is not None and state.evals_without_improvement >= patience:
        run.callbacks.on_event("info", f"Early stopping at step {state.step}: the validation loss has not improved "
                                       f"for {patience} evaluation(s); keeping the weights of step {state.best_step}.",
                               {"best_step": state.best_step, "best_validation_loss": state.best_loss})
        return True
    return False


class Finisher:
    """Ends a run: restores the best weights, evaluates on held-out rows, exports."""

    def __init__(self, run: _Run):
        self.run = run
        self.best: dict[str, torch.Tensor] | None = None  # trainable weights at the best validation loss

    def summary(self) -> dict:
        run, state = self.run, self.run.state
        return {
            "steps": state.step, "total_steps": run.total_steps,
            "final_train_loss": state.loss_history[-1]["train_loss"] if state.loss_history else None,
            "best_validation_loss": state.best_loss, "best_step": state.best_step,
            "train_rows": len(run.train), "validation_rows": len(run.validation),
            "real_tokens_seen": state.real_tokens_seen,
            "tokens_per_second": run.tokens_this_call / run.train_seconds if run.train_seconds else 0.0,
            "elapsed_seconds": run.elapsed(),
            "loss_history": state.loss_history, "eval_history": state.eval_history,
        }

    def finish(self, status: str) -> TrainingResult:
        from workers.training.loop import TrainingResult

        run, spec, state = self.run, self.run.spec, self.run.state
        metrics: dict = {"task": spec.task, "training": self.summary()}
        if status in ("cancelled", "interrupted"):
            return TrainingResult(status, run.steps_this_call, state.step, run.total_steps, metrics, None)
        if self.best is not None and state.best_step != state.step:
            restore_weights(run.model, self.best)
            run.callbacks.on_event("info", f"Restored the weights of step {state.best_step}, which had the best "
                                           f"validation loss ({state.best_loss:.4f}).")
        if spec.final_evaluation:
            metrics.update(self.final_report())
        run.model.eval()
        # A tuned embedding model carries its calibration, which knowledge bases read (knowledge/calibration.py).
        calibration = (metrics.get("tuned") or {}).get("calibration")
        adapter_dir = export_model(run.model, run.tokenizer, spec.output_dir, task=spec.task, method=spec.method,
                                   labels=spec.labels, architecture=spec.architecture, hyper=spec.hyper,
                                   extra={**spec.extra, "best_step": state.best_step, "steps": state.step,
                                          **({"retrieval_calibration": calibration} if calibration else {})})
        run.callbacks.on_event("info", f"Saved the tuned {'model' if spec.method == 'full' else 'adapter'} "
                                       f"after {state.step} steps.", {"path": str(adapter_dir)})
        return TrainingResult(status, run.steps_this_call, state.step, run.total_steps, metrics, adapter_dir)

    def final_report(self) -> dict:
        run, spec = self.run, self.run.spec
        rows, split = (spec.test_rows, "test") if spec.test_rows else (spec.validation_rows, "validation")
        if not rows:
            run.callbacks.on_event("warning", "No test or validation rows: the tuned model was not evaluated.")
            return {"split": None, "tuned": {}, "baselines": {}, "samples": []}
        run.callbacks.on_event("info", f"Evaluating the tuned model on {len(rows)} {split} rows.")
        if spec.task == "sentiment":
            report = evaluate_classifier(run.model, run.tokenizer, rows, spec.labels,
                                         max_seq_length=run.hyper.max_seq_length, device=spec.device,
                                         sample_count=spec.sample_count)
            return {**report, "split": split}
        base_model = None
        if spec.method == "full":  # no adapter to switch off: the base is loaded again
            base_model = load_base(spec, run.tokenizer.pad_token_id).eval()
        if spec.task == "embedding":
            report = evaluate_retrieval(run.model, run.tokenizer, rows,
                                        [*spec.train_rows, *spec.validation_rows, *spec.test_rows],
                                        max_seq_length=run.hyper.max_seq_length, device=spec.device,
                                        base_model=base_model, sample_count=spec.sample_count)
        else:
            report = evaluate_dialogue(run.model, run.tokenizer, rows, max_seq_length=run.hyper.max_seq_length,
                                       device=spec.device, base_model=base_model, sample_count=spec.sample_count,
                                       max_new_tokens=spec.sample_max_new_tokens)
        del base_model
        return {**report, "split": split}
