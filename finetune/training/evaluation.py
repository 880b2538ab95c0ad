"""How good the tuned model is, next to a baseline a business can relate to.

Sentiment: accuracy, macro-F1, per-class figures and the confusion matrix on the held-out test
rows, for the tuned classifier and for the VADER lexicon (what you get with no training at all).
Dialogue: loss, perplexity and next-token accuracy over the assistant tokens, for the base and
the tuned model, plus greedy replies of both to held-out prompts, next to the reference answer.

Metrics are computed here (no sklearn dependency). Macro averages run over the labels that occur
in the references or the predictions, as sklearn does when it is not given a label list: a label
absent from both carries no information about the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from finetune.training.batching import collate, evaluation_batches
from finetune.training.data import Encoded, encode_dialogue, encode_sentiment, render_chat
from finetune.training.modeling import autocast, base_behaviour, classifier_logits, labelled_logits

VADER_LABELS = ("negative", "neutral", "positive")
# Perplexity is exp(loss); beyond this it only says "random" and would overflow JSON floats.
_MAX_LOSS_FOR_PERPLEXITY = 50.0


def classification_metrics(references: Sequence[int], predictions: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion[true][predicted]."""
    size = len(labels)
    confusion = [[0] * size for _ in range(size)]
    for truth, guess in zip(references, predictions, strict=True):
        confusion[truth][guess] += 1
    per_class = {}
    f1_scores = []
    for i, label in enumerate(labels):
        true_positive = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support or predicted:
            f1_scores.append(f1)
    total = len(references)
    return {
        "examples": total,
        "accuracy": sum(confusion[i][i] for i in range(size)) / total if total else 0.0,
        "macro_f1": sum(f1_scores) / len(f1_scores) if f1_scores else 0.0,
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": confusion,
    }


def vader_label(compound: float) -> str:
    """The usual VADER thresholds: compound >= 0.05 positive, <= -0.05 negative, else neutral."""
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


def vader_predictions(texts: Sequence[str]) -> list[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return [vader_label(analyzer.polarity_scores(text)["compound"]) for text in texts]


@torch.no_grad()
def classifier_scores(model, encoded: Sequence[Encoded], pad_token_id: int, *, batch_size: int,
                      device: str) -> tuple[float, list[int]]:
    """Mean cross-entropy and the predicted class of every row (in input order)."""
    was_training = model.training
    model.eval()
    predictions = [0] * len(encoded)
    loss_sum = 0.0
    for indices in evaluation_batches([row.length for row in encoded], batch_size):
        batch = collate([encoded[i] for i in indices], pad_token_id, "sentiment").to(device)
        with autocast(device):
            logits = classifier_logits(model, batch)
        loss_sum += float(F.cross_entropy(logits, batch.labels, reduction="sum"))
        for i, guess in zip(indices, logits.argmax(-1).tolist(), strict=True):
            predictions[i] = guess
    model.train(was_training)
    return (loss_sum / len(encoded) if encoded else 0.0), predictions


@torch.no_grad()
def language_model_scores(model, encoded: Sequence[Encoded], pad_token_id: int, *, batch_size: int,
                          device: str, path: str = "labelled") -> dict:
    """Loss, perplexity and argmax accuracy over the labelled (assistant) tokens."""
    was_training = model.training
    model.eval()
    loss_sum, correct, tokens = 0.0, 0, 0
    for indices in evaluation_batches([row.length for row in encoded], batch_size):
        batch = collate([encoded[i] for i in indices], pad_token_id, "dialogue").to(device)
        with autocast(device):
            logits, targets = labelled_logits(model, batch, path)
        loss_sum += float(F.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(-1) == targets).sum())
        tokens += int(targets.numel())
    model.train(was_training)
    loss = loss_sum / tokens if tokens else 0.0
    return {"loss": loss, "perplexity": math.exp(min(loss, _MAX_LOSS_FOR_PERPLEXITY)),
            "token_accuracy": correct / tokens if tokens else 0.0, "tokens": tokens}


def evaluate_classifier(model, tokenizer, rows: Sequence[dict], labels: Sequence[str], *, max_seq_length: int,
                        device: str = "cpu", batch_size: int = 32, sample_count: int = 8) -> dict:
    """The tuned classifier and the VADER lexicon on the same rows."""
    encoded, _ = encode_sentiment(tokenizer, rows, labels, max_seq_length)
    references = [row.labels[0] for row in encoded]
    _, predictions = classifier_scores(model, encoded, tokenizer.pad_token_id, batch_size=batch_size, device=device)
    report: dict = {"task": "sentiment", "tuned": classification_metrics(references, predictions, labels)}
    vader: list[str] | None = None
    by_lower = {label.lower(): i for i, label in enumerate(labels)}
    if sorted(by_lower) == list(VADER_LABELS):
        vader = vader_predictions([row["text"] for row in rows])
        report["baselines"] = {"vader": classification_metrics(references, [by_lower[v] for v in vader], labels)}
    else:
        report["baselines"] = {"vader": {"skipped": "VADER only tells negative, neutral and positive apart; "
                                                    f"this model's labels are {', '.join(labels)}."}}
    report["samples"] = [
        {"text": row["text"], "reference": row["label"], "tuned": labels[predictions[i]],
         **({"vader": labels[by_lower[vader[i]]]} if vader else {})}
        for i, row in enumerate(rows[:sample_count])
    ]
    return report


def _sample_prompts(rows: Sequence[dict], count: int) -> list[tuple[list[dict], str]]:
    """(conversation up to the last assistant turn, that turn's content) for up to `count` rows."""
    samples = []
    for row in rows:
        messages = row["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is not None:
            samples.append((list(messages[:last]), messages[last]["content"]))
        if len(samples) == count:
            break
    return samples


@torch.no_grad()
def generate_replies(model, tokenizer, conversations: Sequence[Sequence[dict]], *, max_new_tokens: int,
                     max_prompt_tokens: int, device: str) -> list[str]:
    """Greedy replies, one left-padded batch; prompts keep their last `max_prompt_tokens` tokens."""
    if not conversations:
        return []
    was_training = model.training
    model.eval()
    prompts = [tokenizer(render_chat(tokenizer, c, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"][-max_prompt_tokens:] for c in conversations]
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        input_ids[i, width - len(prompt):] = torch.tensor(prompt)
        attention_mask[i, width - len(prompt):] = 1
    with autocast(device):
        output = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model.train(was_training)
    return [tokenizer.decode(sequence[width:], skip_special_tokens=True).strip() for sequence in output]


def evaluate_dialogue(model, tokenizer, rows: Sequence[dict], *, max_seq_length: int, device: str = "cpu",
                      base_model=None, batch_size: int = 8, sample_count: int = 8,
                      max_new_tokens: int = 80) -> dict:
    """Base and tuned model on the same held-out conversations.

    `base_model` is needed only for fully tuned models; an adapter is simply switched off.
    """
    encoded, _ = encode_dialogue(tokenizer, rows, max_seq_length)
    pad = tokenizer.pad_token_id
    tuned = language_model_scores(model, encoded, pad, batch_size=batch_size, device=device)
    samples = _sample_prompts(rows, sample_count)
    conversations = [conversation for conversation, _ in samples]

    def replies(generator) -> list[str]:
        return generate_replies(generator, tokenizer, conversations, max_new_tokens=max_new_tokens,
                                max_prompt_tokens=max_seq_length, device=device)

    tuned_replies = replies(model)
    if base_model is not None:
        base = language_model_scores(base_model, encoded, pad, batch_size=batch_size, device=device)
        base_replies = replies(base_model)
    else:
        with base_behaviour(model) as plain:
            base = language_model_scores(plain, encoded, pad, batch_size=batch_size, device=device)
            base_replies = replies(plain)
    return {
        "task": "dialogue",
        "tuned": tuned,
        "baselines": {"base": base},
        "samples": [
            {"prompt": conversation, "reference": reference, "base": base_reply, "tuned": tuned_reply}
            for (conversation, reference), base_reply, tuned_reply in zip(samples, base_replies, tuned_replies,
                                                                          strict=True)
        ],
    }

