"""Quality targets (`make quality`; not part of CI). Writes docs/quality.md.

- Sentiment: all-MiniLM-L6-v2 tuned on acme-support-sentiment with the default settings, through the
  product's own path (dataset validation, split, job, training worker code): macro-F1 on its test split
  vs VADER (target: >= 0.85 and >= 10 points above VADER), and on bench/data/sentiment-unseen.csv —
  customer messages written separately from the training set, to estimate generalisation.
- Dialogue: SmolLM2 tuned (LoRA, defaults) on acme-support-faq; the held-out paraphrased questions each
  list facts their answer must contain; the fraction of answers containing them, base vs tuned.
Run: .venv/bin/python -m bench.quality   (about 20-40 minutes on a 2-core CPU)
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import setup_django, temporary_data_dir

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "finetune" / "demo_data"


def tune(organization, base_slug: str, path: Path, task: str, suffix: str):
    from finetune import jobs
    from finetune.cli_progress import TerminalProgress
    from finetune.datasets import create_dataset
    from finetune.runner import run_job
    from store.models import FoundationModel

    dataset = create_dataset(organization, path.read_bytes(), path.name, task=task).dataset
    job = jobs.create_job(organization, FoundationModel.objects.get(slug=base_slug), dataset, suffix=suffix,
                          enqueue=False)
    started = time.monotonic()
    progress = TerminalProgress(sys.stderr)
    job = run_job(job.pk, "quality", echo=progress)
    progress.close()
    assert job.status == "succeeded", job.error_message
    return job, time.monotonic() - started


def unseen_sentiment(tuned) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune.training.evaluation import classification_metrics, vader_predictions
    from store.tuned import artifact_folder

    rows = list(csv.DictReader((REPO / "bench" / "data" / "sentiment-unseen.csv").open()))
    labels = list(tuned.labels)
    folder = artifact_folder(tuned)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        batch = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")
        predictions = model(**batch).logits.argmax(-1).tolist()
    references = [labels.index(r["label"]) for r in rows]
    vader = [labels.index(label) for label in vader_predictions([r["text"] for r in rows])]
    return {"tuned": classification_metrics(references, predictions, labels),
            "vader": classification_metrics(references, vader, labels), "examples": len(rows)}


def contains_facts(answer: str, facts: list[str]) -> bool:
    normalized = answer.lower().replace("\u2013", "-").replace("\u2014", "-")
    return all(fact.lower().replace("\u2013", "-") in normalized for fact in facts)


def answer_questions(model, tokenizer, system: str, questions: list[str], batch: int = 8) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    answers: list[str] = []
    for start in range(0, len(questions), batch):
        prompts = [tokenizer.apply_chat_template([{"role": "system", "content": system},
                                                  {"role": "user", "content": q}], add_generation_prompt=True,
                                                 tokenize=False) for q in questions[start:start + batch]]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=96, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers += [tokenizer.decode(row[inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
                    for row in output]
    return answers


def dialogue_quality(tuned) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.demo import TRAINING_SYSTEM_PROMPT, demo_system_prompt
    from store.serving.loading import model_folder
    from store.tuned import artifact_folder

    held_out = [json.loads(line) for line in (DATA / "acme-support-faq-heldout.jsonl").read_text().splitlines()
                if line.strip()]
    questions = [item["question"] for item in held_out]
    folder = model_folder(tuned.base)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(folder).eval()
    results = {}
    for name, model, system in (
        ("base", base, TRAINING_SYSTEM_PROMPT),
        ("base + facts in the system prompt (the demo bot)", base, demo_system_prompt()),
    ):
        results[name] = answer_questions(model, tokenizer, system, questions)
    tuned_model = PeftModel.from_pretrained(base, artifact_folder(tuned)).eval()
    results["tuned"] = answer_questions(tuned_model, tokenizer, TRAINING_SYSTEM_PROMPT, questions)
    scores = {name: sum(contains_facts(a, item["must_contain"]) for a, item in zip(answers, held_out, strict=True))
              / len(held_out) for name, answers in results.items()}
    examples = [{"question": item["question"], "must_contain": item["must_contain"],
                 **{name: answers[i] for name, answers in results.items()}} for i, item in enumerate(held_out[:6])]
    return {"questions": len(held_out), "fraction_with_facts": scores, "examples": examples}


def report(sentiment_job, sentiment_seconds, unseen, dialogue_job, dialogue_seconds, dialogue) -> str:
    tuned, vader = sentiment_job.metrics["tuned"], sentiment_job.metrics["baselines"]["vader"]
    lines = [
        "# Quality report",
        "",
        "Produced by `make quality` (bench/quality.py): tuned through the product's own code path with default",
        "settings, on a 2-core CPU. Not part of CI.",
        "",
        "## Sentiment — all-MiniLM-L6-v2 on acme-support-sentiment",
        "",
        f"Method {sentiment_job.method}, {sentiment_job.hyperparameters['epochs']} epochs, "
        f"{sentiment_job.total_steps} steps, {sentiment_seconds:.0f} s.",
        "",
        "| split | model | accuracy | macro-F1 |",
        "|---|---|---|---|",
        f"| test split ({tuned['examples']} messages) | tuned | {tuned['accuracy']:.3f} | "
        f"**{tuned['macro_f1']:.3f}** |",
        f"| test split | VADER | {vader['accuracy']:.3f} | {vader['macro_f1']:.3f} |",
        f"| unseen messages ({unseen['examples']}) | tuned | {unseen['tuned']['accuracy']:.3f} | "
        f"**{unseen['tuned']['macro_f1']:.3f}** |",
        f"| unseen messages | VADER | {unseen['vader']['accuracy']:.3f} | {unseen['vader']['macro_f1']:.3f} |",
        "",
        f"Targets: macro-F1 >= 0.85 on the test split ({'met' if tuned['macro_f1'] >= 0.85 else 'NOT met'}); "
        f"at least 10 points above VADER ({'met' if tuned['macro_f1'] - vader['macro_f1'] >= 0.10 else 'NOT met'}: "
        f"+{100 * (tuned['macro_f1'] - vader['macro_f1']):.1f} points).",
        "",
        "## Dialogue — SmolLM2 135M Instruct on acme-support-faq",
        "",
        f"Method {dialogue_job.method}, {dialogue_job.hyperparameters['epochs']} epochs, "
        f"{dialogue_job.total_steps} steps, {dialogue_seconds:.0f} s. {dialogue['questions']} held-out "
        "paraphrased questions (finetune/demo_data/acme-support-faq-heldout.jsonl), greedy answers of up to 96 "
        "tokens; an answer counts if it contains every fact listed for it.",
        "",
        "| model | answers containing their facts |",
        "|---|---|",
        *[f"| {name} | {100 * value:.0f}% |" for name, value in dialogue["fraction_with_facts"].items()],
        "",
        "### Examples",
        "",
    ]
    for example in dialogue["examples"]:
        lines += [f"**{example['question']}** (must contain: {', '.join(example['must_contain'])})", ""]
        for name in dialogue["fraction_with_facts"]:
            lines.append(f"- *{name}*: {example[name]}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    data_dir = temporary_data_dir("gptstore-quality-")
    setup_django(data_dir)
    from accounts import people

    user = people.create_user("quality@example.com", "a-long-quality-passphrase")
    organization = people.create_organization("Quality", user)
    sentiment_job, sentiment_seconds = tune(organization, "all-minilm-l6-v2", DATA / "acme-support-sentiment.csv",
                                            "sentiment", "acme-sentiment")
    unseen = unseen_sentiment(sentiment_job.tuned_model)
    print(json.dumps({"benchmark": "quality_sentiment", "test_macro_f1": sentiment_job.metrics["tuned"]["macro_f1"],
                      "vader_macro_f1": sentiment_job.metrics["baselines"]["vader"]["macro_f1"],
                      "unseen_macro_f1": unseen["tuned"]["macro_f1"], "unseen_vader_macro_f1":
                      unseen["vader"]["macro_f1"]}), flush=True)
    dialogue_job, dialogue_seconds = tune(organization, "smollm2-135m-instruct", DATA / "acme-support-faq.jsonl",
                                          "dialogue", "acme-support-faq")
    dialogue = dialogue_quality(dialogue_job.tuned_model)
    print(json.dumps({"benchmark": "quality_dialogue", **dialogue["fraction_with_facts"]}), flush=True)
    (REPO / "docs" / "quality.md").write_text(report(sentiment_job, sentiment_seconds, unseen, dialogue_job,
                                                      dialogue_seconds, dialogue))


if __name__ == "__main__":
    main()
