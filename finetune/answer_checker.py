"""Train the answer checker (knowledge/checker.py) from 16 businesses' help centres and questions.

Worker-side (it runs the serving engine and the training loop in-process). The data lives in
finetune/answer_checker_data/<business>/: the business's help centre (kb.md), customer questions it
answers with the entries that answer them (answerable.jsonl) and questions it does not answer
(unanswerable.jsonl). Acme Shoes, the demo, is not among them: the checker is measured on a business
it has never seen (make quality).

For each question, the passages the bundled embedding model ranks highest are the candidates a live
knowledge base would show the checker: the right entries are positives, the others (and every
candidate of an unanswerable question) negatives. The checker is then tuned with the product's own
training loop: a LoRA adapter and a two-label head on all-MiniLM-L6-v2, exported as a standard PEFT
folder.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from knowledge import checker
from knowledge.chunking import embedding_text, passages
from knowledge.documents import parse_upload

DATA_DIR = Path(__file__).resolve().parent / "answer_checker_data"
CANDIDATES = 4  # per question and query: what a knowledge base with confident retrieval hands the checker
VALIDATION_BUSINESSES = ("harbor-hotel", "voltbay-electronics")


@dataclass
class Business:
    name: str
    passages: list[dict]
    answerable: list[dict]
    unanswerable: list[dict]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def load_business(folder: Path) -> Business:
    document = parse_upload((folder / "kb.md").read_bytes(), "kb.md", 10**8)
    rows = [{"title": d.title, "text": d.text, "question": d.question} for d in passages(document.sections)]
    return Business(folder.name, rows, _read_jsonl(folder / "answerable.jsonl"),
                    _read_jsonl(folder / "unanswerable.jsonl"))


def businesses() -> list[Business]:
    return [load_business(folder) for folder in sorted(DATA_DIR.iterdir()) if (folder / "kb.md").exists()]


def _heading(title: str) -> str:
    return title.split(" › ")[-1].split(" (")[0].strip()


def gold_passages(business: Business, item: dict) -> set[int]:
    """The passages that hold an answer: in the named entries, those containing the expected facts."""
    facts = [fact.lower() for fact in item.get("must_contain", [])]
    sections = item.get("sections") or []
    gold = set()
    for index, passage in enumerate(business.passages):
        in_section = not sections or _heading(passage["title"]) in {s.strip() for s in sections}
        body = (passage["title"] + " " + passage["text"]).lower()
        if in_section and any(fact in body for fact in facts):
            gold.add(index)
    return gold


def queries_of(item: dict) -> list[str]:
    """What the knowledge base would look up (knowledge.policy.retrieval_queries): a follow-up joined
    to the message before it."""
    from knowledge.policy import retrieval_queries

    turns = item.get("turns") or [item["question"]]
    return retrieval_queries([{"role": "user", "content": text} for text in turns])


def candidate_rows(business: Business, embed, rng: random.Random) -> list[dict]:
    """Checker rows of one business: (question, candidate passage) -> answers / unrelated."""
    import torch

    vectors = embed([embedding_text(p["title"], p["text"], p["question"]) for p in business.passages])
    rows: list[dict] = []
    items = [(item, True) for item in business.answerable] + [(item, False) for item in business.unanswerable]
    for item, answerable in items:
        gold = gold_passages(business, item) if answerable else set()
        queries = queries_of(item)
        query_vectors = embed(queries)
        for query, vector in zip(queries, query_vectors, strict=True):
            ranked = torch.topk(vector @ vectors.T, min(CANDIDATES, len(business.passages))).indices.tolist()
            for index in ranked + [g for g in gold if g not in ranked]:
                passage = business.passages[index]
                rows.append({"text": checker.pair_text(query, passage["title"], passage["text"]),
                             "label": checker.LABELS[1] if index in gold else checker.LABELS[0]})
    rng.shuffle(rows)
    return rows


def build_rows(engine) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows): two businesses are kept out of training to validate on."""
    import torch

    from store.serving.protocol import EmbeddingRequest, unpack_vectors

    def embed(texts: list[str]):
        from knowledge.worker import _Answer

        answer = _Answer()
        engine.submit_embedding(EmbeddingRequest(f"checker-data-{uuid.uuid4().hex}", f"encoder:{checker.BASE_SLUG}",
                                                 texts), answer)
        return torch.tensor(unpack_vectors(answer.wait()))

    rng = random.Random(42)
    train: list[dict] = []
    validation: list[dict] = []
    for business in businesses():
        rows = candidate_rows(business, embed, rng)
        (validation if business.name in VALIDATION_BUSINESSES else train).extend(rows)
    return train, validation


def train(output: Path = checker.CHECKER_FOLDER, work_dir: Path | None = None, epochs: int = 2,
          echo=print) -> dict:
    """Build the rows, tune the checker, and put the adapter in `output`. Returns the metrics."""
    from django.conf import settings

    from finetune.training.loop import run_training
    from finetune.training.spec import Hyperparameters, TrainingSpec
    from store.models import FoundationModel
    from store.serving.engine import InferenceEngine
    from store.serving.loading import model_folder
    from store.serving.resolver import resolve_model_key

    base = FoundationModel.objects.get(slug=checker.BASE_SLUG)
    engine = InferenceEngine(resolve_model_key, device="cpu")
    engine.start()
    try:
        train_rows, validation_rows = build_rows(engine)
    finally:
        engine.stop()
    positives = sum(row["label"] == checker.LABELS[1] for row in train_rows)
    echo(f"{len(train_rows)} training rows ({positives} answers), {len(validation_rows)} validation rows")
    work_dir = Path(work_dir) if work_dir is not None else Path(settings.DATA_DIR) / "answer-checker-run"
    shutil.rmtree(work_dir, ignore_errors=True)
    hyper = Hyperparameters(epochs=epochs, learning_rate=5e-4, batch_size=32, max_seq_length=256, lora_r=16,
                            lora_alpha=32, lora_dropout=0.05, target_modules=["query", "key", "value", "dense"],
                            warmup_ratio=0.06, checkpoint_every_steps=100)
    spec = TrainingSpec(task="sentiment", method="lora", base_folder=model_folder(base),
                        architecture=base.architecture, hyper=hyper, train_rows=train_rows,
                        validation_rows=validation_rows, test_rows=validation_rows, labels=list(checker.LABELS),
                        output_dir=work_dir / "output", checkpoint_dir=work_dir / "checkpoints")
    result = run_training(spec, _EchoCallbacks(echo))
    assert result.adapter_dir is not None, f"the run ended {result.status}"
    output.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(result.adapter_dir / name, output / name)
    metrics = {"training_rows": len(train_rows), "validation_rows": len(validation_rows),
               "validation_businesses": list(VALIDATION_BUSINESSES), **(result.metrics.get("tuned") or {})}
    (output / "gpt_store.json").write_text(json.dumps({"base": checker.BASE_SLUG, "labels": checker.LABELS,
                                                       "hyperparameters": hyper.to_dict(), "metrics": metrics},
                                                      indent=2, default=str))
    return metrics


class _EchoCallbacks:
    def __init__(self, echo) -> None:
        self.echo = echo

    def on_progress(self, progress) -> None:
        if progress.step % 20 == 0 or progress.step == progress.total_steps:
            self.echo(f"step {progress.step}/{progress.total_steps} loss {progress.train_loss:.4f}")

    def on_event(self, level: str, message: str, data: dict | None = None) -> None:
        self.echo(message)

    def on_evaluation(self, step: int, metrics: dict) -> None:
        self.echo(f"step {step}: {metrics}")

    def on_checkpoint(self, step: int, path: Path) -> None:
        pass

    def should_stop(self) -> str | None:
        return None
