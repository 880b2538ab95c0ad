"""The generated model card of a tuned model (Markdown, rendered safely by the store)."""

from __future__ import annotations

from finetune.models import FineTuneJob


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def classification_section(metrics: dict) -> list[str]:
    tuned = metrics.get("tuned", {})
    lines = ["## Evaluation (test split)", "", "| | accuracy | macro-F1 |", "|---|---|---|",
             f"| this model | {_pct(tuned.get('accuracy'))} | {_pct(tuned.get('macro_f1'))} |"]
    for name, baseline in (metrics.get("baselines") or {}).items():
        if isinstance(baseline, dict) and "accuracy" in baseline:
            lines.append(f"| {name} baseline | {_pct(baseline.get('accuracy'))} | {_pct(baseline.get('macro_f1'))} |")
    per_class = tuned.get("per_class") or {}
    if per_class:
        lines += ["", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label, row in per_class.items():
            lines.append(f"| {label} | {_pct(row.get('precision'))} | {_pct(row.get('recall'))} | "
                         f"{_pct(row.get('f1'))} | {row.get('support', '')} |")
    return lines


def dialogue_section(metrics: dict) -> list[str]:
    tuned, base = metrics.get("tuned", {}), (metrics.get("baselines") or {}).get("base", {})
    return ["## Evaluation (held-out split)", "", "| | validation loss | perplexity | token accuracy |",
            "|---|---|---|---|",
            f"| this model | {_num(tuned.get('loss'))} | {_num(tuned.get('perplexity'), 2)} | "
            f"{_pct(tuned.get('token_accuracy'))} |",
            f"| base model | {_num(base.get('loss'))} | {_num(base.get('perplexity'), 2)} | "
            f"{_pct(base.get('token_accuracy'))} |"]


def embedding_section(metrics: dict) -> list[str]:
    tuned, base = metrics.get("tuned", {}), (metrics.get("baselines") or {}).get("base", {})
    lines = ["## Evaluation (held-out queries)", "",
             f"Each held-out question is searched among all {tuned.get('passages', '—')} distinct passages of the "
             "dataset.", "", "| | recall@1 | recall@3 | MRR |", "|---|---|---|---|"]
    for name, row in (("this model", tuned), ("base model", base)):
        lines.append(f"| {name} | {_pct(row.get('recall_at_1'))} | {_pct(row.get('recall_at_3'))} | "
                     f"{_num(row.get('mrr'))} |")
    return lines


_TASK_LINES = {
    "dialogue": "answers customers in the voice and with the facts of its training conversations",
    "embedding": "turns questions and passages into vectors, so a question finds the passage that answers it",
}
_INTENDED_USE = {
    "dialogue": "Customer-support replies for the organization that trained it, behind its system prompt and "
                "handoff rules. Small models can state wrong facts confidently: keep a human in the loop.",
    "sentiment": "Scoring the sentiment of customer messages so agents see the conversations that go badly first. "
                 "Trained on a small, synthetic-or-internal set: check it on your own traffic before relying on it.",
    "embedding": "Retrieval over the organization's own knowledge base: pick it as the knowledge base's embedding "
                 "model. It was tuned on this organization's questions; check recall on questions it has not seen "
                 "before relying on it.",
}
_SECTIONS = {"sentiment": classification_section, "dialogue": dialogue_section, "embedding": embedding_section}


def build_card(job: FineTuneJob, metrics: dict, steps: int) -> str:
    """The tuned model's card; `steps` is the training's final step (the job row in hand predates its
    progress updates)."""
    base, dataset = job.base_model, job.dataset
    hyper = job.hyperparameters
    task_line = _TASK_LINES.get(job.task, f"classifies a text as one of: {', '.join(dataset.labels)}")
    lines = [
        f"## {job.suffix} — tuned from {base.display_name}",
        "",
        f"Tuned from [{base.display_name}](/models/{base.slug}/) ({job.get_method_display()}): it {task_line}.",
        "",
        "| | |", "|---|---|",
        f"| Base model | `{base.slug}` ({base.parameters_display} parameters) |",
        f"| Task | {job.task} |",
        f"| Method | {job.get_method_display()} |",
        f"| Training data | {dataset.name} — {dataset.row_count} rows "
        f"({', '.join(f'{k} {v}' for k, v in dataset.stats.get('split_sizes', {}).items())}) |",
        f"| Epochs / learning rate / batch | {hyper.get('epochs')} / {hyper.get('learning_rate')} / "
        f"{hyper.get('batch_size')} × {hyper.get('gradient_accumulation', 1)} |",
        f"| Max sequence length | {hyper.get('max_seq_length')} |",
        f"| Seed | {hyper.get('seed')} |",
        f"| Job | `{job.openai_id}` ({steps} optimizer steps) |",
        "",
    ]
    if job.method in ("lora", "adalora"):
        lines.insert(-1, f"| LoRA r / alpha / dropout | {hyper.get('lora_r')} / {hyper.get('lora_alpha')} / "
                         f"{hyper.get('lora_dropout')} |")
    distribution = dataset.stats.get("label_distribution")
    if distribution:
        lines += ["Label distribution of the training file: "
                  + ", ".join(f"{label} {count}" for label, count in distribution.items()), ""]
    lines += _SECTIONS[job.task](metrics)
    lines += [
        "",
        "## Intended use",
        "",
        _INTENDED_USE[job.task],
        "",
        "## Files",
        "",
        "Weights are stored as safetensors with JSON configuration; the download is a standard PEFT adapter "
        "folder that `PeftModel.from_pretrained(base, folder)` loads." if job.method != "full" else
        "Weights are stored as a full safetensors model folder that `from_pretrained(folder)` loads.",
    ]
    return "\n".join(lines)
