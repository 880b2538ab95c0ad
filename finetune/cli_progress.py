"""A terminal progress bar for `manage.py finetune` (the runner's `echo` callback)."""

from __future__ import annotations

from typing import Any, TextIO, cast


class TerminalProgress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None  # a tqdm bar, created on the first progress report

    def __call__(self, kind: str, payload: object) -> None:
        if kind == "progress":
            self._progress(payload)
        elif kind == "event":
            self._write(str(payload))
        elif kind == "evaluation":
            step, metrics = cast(tuple[int, dict], payload)
            loss = metrics.get("validation_loss")
            if loss is not None:
                self._write(f"step {step}: validation loss {loss:.4f}")

    def _progress(self, progress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=progress.total_steps, file=self.stream, unit="step", dynamic_ncols=True,
                            initial=progress.step - 1 if progress.step else 0)
        self.bar.total = progress.total_steps
        self.bar.n = progress.step
        postfix = {"epoch": f"{progress.epoch:.2f}", "tok/s": f"{progress.tokens_per_second:.0f}"}
        if progress.train_loss is not None:
            postfix["loss"] = f"{progress.train_loss:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def _write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @staticmethod
    def format_evaluation(metrics: dict) -> str:
        lines = ["Evaluation:"]
        tuned = metrics.get("tuned", {})
        if metrics.get("task") == "embedding":
            base = (metrics.get("baselines") or {}).get("base", {})
            for name, row in (("tuned", tuned), ("base", base)):
                if row:
                    lines.append(f"  {name}: recall@1 {row.get('recall_at_1', 0):.3f}, "
                                 f"recall@3 {row.get('recall_at_3', 0):.3f}, MRR {row.get('mrr', 0):.3f} "
                                 f"({row.get('queries', 0)} queries, {row.get('passages', 0)} passages)")
        elif metrics.get("task") == "sentiment":
            lines.append(f"  tuned: accuracy {tuned.get('accuracy', 0):.3f}, macro-F1 {tuned.get('macro_f1', 0):.3f}")
            for name, baseline in (metrics.get("baselines") or {}).items():
                if isinstance(baseline, dict) and "macro_f1" in baseline:
                    lines.append(f"  {name}: accuracy {baseline['accuracy']:.3f}, macro-F1 {baseline['macro_f1']:.3f}")
        else:
            base = (metrics.get("baselines") or {}).get("base", {})
            for name, row in (("tuned", tuned), ("base", base)):
                if row:
                    lines.append(f"  {name}: validation loss {row.get('loss', float('nan')):.4f}, "
                                 f"perplexity {row.get('perplexity', float('nan')):.2f}, "
                                 f"token accuracy {row.get('token_accuracy', float('nan')):.3f}")
        return "\n".join(lines)
