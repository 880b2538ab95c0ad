"""Train GPT Store Retrieval, the bundled embedding model knowledge bases use by default.

all-MiniLM-L6-v2 ranks passages well but its similarities are not comparable across questions: an
unanswerable question ("when was Acme founded?") often scores as high against some passage as an
answerable one against its own (docs/knowledge.md). This tunes it (a LoRA adapter, 2.7 MB, shipped in
store/bundled/gpt-store-retrieval/) on 30 businesses' help centres and customer questions
(finetune/retrieval_data/) with two objectives at once:

- in-batch negatives (workers/training/retrieval.py): a question is closer to the passage that
  answers it than to the other passages of its business;
- calibration: a logistic curve on the similarity, trained to be high for a question and its answer
  and low for a question and the best wrong passage — and for every passage, when the business does
  not answer the question at all.

Two businesses are kept out of training; the similarity cut is set on them (the most "I don't know"s
while 90% of answerable questions stay answered). Acme Shoes, the demo, is in neither: it is measured
as a business the model has never seen (make quality). Worker-side: it trains in-process.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.calibration import Calibration
from knowledge.chunking import passages, vector_texts
from knowledge.documents import parse_upload
from knowledge.policy import retrieval_queries

DATA_DIR = Path(__file__).resolve().parent / "retrieval_data"
EVALUATION_ONLY_FILE = DATA_DIR / "evaluation-only.txt"
HELD_OUT = ("harbor-hotel", "voltbay-electronics")
BASE_SLUG = "all-minilm-l6-v2"
QUESTIONS_PER_BATCH = 16
UNANSWERABLE_PER_BATCH = 8
HARD_NEGATIVES = 3
KEEP_ANSWERED = 0.9
EMBED_CHUNK = 32


@dataclass
class Business:
    name: str
    passages: list[list[str]]  # each passage's texts as a knowledge base embeds them (itself, its sentences)
    bodies: list[str]  # title and text, to find the facts in
    answerable: list[tuple[str, set[int]]] = field(default_factory=list)  # (query, the passages that answer it)
    unanswerable: list[str] = field(default_factory=list)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _query(item: dict) -> str:
    """What the product looks up for the item's last turn: a follow-up joined to the turn before it."""
    turns = item.get("turns") or [item["question"]]
    lookup = retrieval_queries([{"role": "user", "content": text} for text in turns])
    return lookup.queries[lookup.follow_up if lookup.follow_up is not None else 0]


def _heading(title: str) -> str:
    return title.split(" › ")[-1].split(" (")[0].strip()


def load_business(folder: Path) -> Business:
    document = parse_upload((folder / "kb.md").read_bytes(), "kb.md", 10**8)
    drafts = passages(document.sections)
    business = Business(folder.name, [vector_texts(d.title, d.text, d.question) for d in drafts],
                        [f"{d.title} {d.text}".lower() for d in drafts])
    for item in _read_jsonl(folder / "answerable.jsonl"):
        sections = {s.strip() for s in item.get("sections") or []}
        gold = {i for i, (draft, body) in enumerate(zip(drafts, business.bodies, strict=True))
                if (not sections or _heading(draft.title) in sections)
                and any(fact.lower() in body for fact in item["must_contain"])}
        if gold:
            business.answerable.append((_query(item), gold))
    business.unanswerable = [_query(item) for item in _read_jsonl(folder / "unanswerable.jsonl")]
    return business


def business_names() -> list[str]:
    return [folder.name for folder in sorted(DATA_DIR.iterdir()) if (folder / "kb.md").exists()]


def businesses(leave_out: Collection[str] = ()) -> list[Business]:
    return [load_business(DATA_DIR / name) for name in business_names() if name not in leave_out]


def evaluation_only() -> set[str]:
    """The help centres kept for measuring the model on businesses it never saw (EVALUATION_ONLY_FILE)."""
    lines = EVALUATION_ONLY_FILE.read_text().splitlines() if EVALUATION_ONLY_FILE.exists() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


class RetrievalTrainer:
    """all-MiniLM-L6-v2 with a LoRA adapter, and the two calibration numbers, trained together."""

    def __init__(self, base_folder: Path, lora_r: int = 16, learning_rate: float = 3e-4, seed: int = 42) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(seed)
        self.tokenizer = AutoTokenizer.from_pretrained(base_folder)
        self.model = get_peft_model(AutoModel.from_pretrained(base_folder, dtype=torch.float32), LoraConfig(
            r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05, target_modules=["query", "key", "value", "dense"]))
        self.cut = torch.nn.Parameter(torch.tensor(0.5))
        self.scale = torch.nn.Parameter(torch.tensor(10.0))
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([{"params": trainable, "lr": learning_rate},
                                            {"params": [self.cut, self.scale], "lr": 1e-2}])
        self.rng = random.Random(seed)

    def embed(self, texts: list[str], train: bool = False):
        """Unit vectors in input order. Texts of similar length go through together (a passage's sentences
        are much shorter than the passage): padding every text of a step to the longest one kept the
        activations of ~50,000 padding tokens for the backward pass."""
        import torch

        from workers.training.retrieval import sentence_embeddings

        self.model.train(train)
        ids = self.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        pieces = []
        with torch.set_grad_enabled(train):
            for start in range(0, len(order), EMBED_CHUNK):
                chunk = order[start:start + EMBED_CHUNK]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                pieces.append(sentence_embeddings(self.model, input_ids, mask))
        vectors = torch.cat(pieces)
        return vectors[torch.tensor(order).argsort()]

    def passage_scores(self, queries, business: Business, columns: list[int], train: bool = False):
        """(queries x columns) similarity of each query to each passage: the best over the passage's
        vectors (itself and its sentences), as a knowledge base scores them."""
        import torch

        texts = [text for column in columns for text in business.passages[column]]
        owners = torch.tensor([position for position, column in enumerate(columns)
                               for _ in business.passages[column]])
        scores = queries @ self.embed(texts, train=train).T
        best = torch.full((len(queries), len(columns)), -2.0)
        return best.scatter_reduce(1, owners.expand(len(queries), -1), scores, reduce="amax")

    def hard_negatives(self, business: Business) -> dict[str, list[int]]:
        """The passages the untuned model ranks highest for each question (the right ones excluded)."""
        import torch

        with self.model.disable_adapter():
            questions = [q for q, _ in business.answerable] + business.unanswerable
            scores = self.passage_scores(self.embed(questions), business, list(range(len(business.passages))))
            ranked = torch.topk(scores, min(6, len(business.passages))).indices.tolist()
        gold = dict(business.answerable)
        return {q: [i for i in row if i not in gold.get(q, set())][:HARD_NEGATIVES] for q, row in zip(
            questions, ranked, strict=True)}

    def step(self, business: Business, answerable: list[tuple[str, set[int]]], unanswerable: list[str],
             negatives: dict[str, list[int]]) -> float:
        import torch
        import torch.nn.functional as F

        from workers.training.retrieval import SIMILARITY_SCALE

        golds = [self.rng.choice(sorted(gold)) for _, gold in answerable]
        extra = [i for q, _ in answerable for i in negatives[q][:1]] + [i for q in unanswerable for i in negatives[q]]
        columns = list(dict.fromkeys(golds + extra))
        loss = torch.zeros(())
        logits, labels = [], []
        if answerable:
            # In-batch negatives with the hard negatives as extra columns: each question against its right
            # passage, every other passage of the batch, and none of its other right answers.
            scores = self.passage_scores(self.embed([q for q, _ in answerable], train=True), business, columns,
                                         train=True)
            right = torch.tensor([[column in gold for column in columns] for _, gold in answerable])
            target = torch.tensor([columns.index(g) for g in golds])
            others = right & (torch.arange(len(columns))[None, :] != target[:, None])
            loss = loss + F.cross_entropy((SIMILARITY_SCALE * scores).masked_fill(others, float("-inf")), target)
            logits += [scores[torch.arange(len(answerable)), target],
                       scores.masked_fill(right, -2.0).max(dim=1).values]
            labels += [torch.ones(len(answerable)), torch.zeros(len(answerable))]
        if unanswerable:
            logits.append(self.passage_scores(self.embed(unanswerable, train=True), business, columns,
                                              train=True).max(dim=1).values)
            labels.append(torch.zeros(len(unanswerable)))
        loss = loss + F.binary_cross_entropy_with_logits(self.scale * (torch.cat(logits) - self.cut), torch.cat(labels))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def top_similarities(self, business: Business) -> tuple[list[float], list[float], float]:
        """Each answerable question's best similarity, each unanswerable one's, and recall@1."""
        columns = list(range(len(business.passages)))
        answerable = self.passage_scores(self.embed([q for q, _ in business.answerable]), business, columns)
        unanswerable = self.passage_scores(self.embed(business.unanswerable), business, columns) \
            if business.unanswerable else None
        right = sum(int(row.argmax()) in gold for row, (_, gold) in zip(answerable, business.answerable, strict=True))
        return (answerable.max(dim=1).values.tolist(),
                unanswerable.max(dim=1).values.tolist() if unanswerable is not None else [],
                right / max(1, len(business.answerable)))


def choose_cut(answerable: list[float], unanswerable: list[float], keep: float = KEEP_ANSWERED) -> float:
    """The highest similarity cut that still answers `keep` of the answerable questions."""
    ordered = sorted(answerable)
    return ordered[min(len(ordered) - 1, int(round((1 - keep) * len(ordered))))]


def train(output: Path, epochs: int = 3, echo=print, base_folder: Path | None = None,
          data: list[Business] | None = None, held_out_names: tuple[str, ...] = HELD_OUT) -> dict:
    """Tune, calibrate on the held-out businesses, and write the adapter and its manifest to `output`."""
    if base_folder is None:
        from store.models import FoundationModel
        from workers.models.loading import model_folder

        base_folder = model_folder(FoundationModel.objects.get(slug=BASE_SLUG))
    trainer = RetrievalTrainer(base_folder)
    every = businesses(leave_out=evaluation_only()) if data is None else data
    training = [b for b in every if b.name not in held_out_names]
    held_out = [b for b in every if b.name in held_out_names]
    negatives = {b.name: trainer.hard_negatives(b) for b in training}
    echo(f"{len(training)} businesses, {sum(len(b.answerable) for b in training)} answerable and "
         f"{sum(len(b.unanswerable) for b in training)} unanswerable questions; holding out "
         f"{', '.join(held_out_names)}")
    started, step = time.monotonic(), 0
    for epoch in range(epochs):
        plan = []
        for business in training:
            answerable, unanswerable = business.answerable[:], business.unanswerable[:]
            trainer.rng.shuffle(answerable)
            trainer.rng.shuffle(unanswerable)
            for n, start in enumerate(range(0, len(answerable), QUESTIONS_PER_BATCH)):
                plan.append((business, answerable[start:start + QUESTIONS_PER_BATCH],
                             unanswerable[n * UNANSWERABLE_PER_BATCH:(n + 1) * UNANSWERABLE_PER_BATCH]))
        trainer.rng.shuffle(plan)
        for business, answerable, unanswerable in plan:
            loss = trainer.step(business, answerable, unanswerable, negatives[business.name])
            step += 1
            if step % 20 == 0:
                echo(f"epoch {epoch + 1}/{epochs} step {step}: loss {loss:.3f} ({time.monotonic() - started:.0f} s)")
    answered, unanswered, recalls = [], [], []
    for business in held_out:
        a, u, recall = trainer.top_similarities(business)
        answered += a
        unanswered += u
        recalls.append(recall)
    cut = choose_cut(answered, unanswered)
    calibration = Calibration(cut, float(trainer.scale.detach()))
    dont_know = sum(s < cut for s in unanswered) / max(1, len(unanswered))
    metrics = {"held_out": list(held_out_names), "recall_at_1": sum(recalls) / len(recalls),
               "answered": sum(s >= cut for s in answered) / len(answered), "dont_know": dont_know,
               "seconds": round(time.monotonic() - started)}
    output.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(str(output))
    (output / "README.md").unlink(missing_ok=True)  # peft's placeholder card; the catalog has the real one
    (output / "gpt_store.json").write_text(json.dumps({
        "base": BASE_SLUG, "retrieval_calibration": calibration.to_dict(), "metrics": metrics,
        "training": {"businesses": [b.name for b in training], "epochs": epochs, "lora_r": 16}}, indent=2))
    echo(f"held out: recall@1 {metrics['recall_at_1']:.2f}, cut {cut:.3f} answers {metrics['answered']:.0%} of "
         f"answerable and says it does not know {dont_know:.0%} of unanswerable questions")
    return metrics
