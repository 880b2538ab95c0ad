"""How good the tuned model is, next to a baseline a business can relate to.

Sentiment: accuracy, macro-F1, per-class figures and the confusion matrix on the held-out test
rows, for the tuned classifier and for the VADER lexicon (what you get with no training at all).
Dialogue: loss, perplexity and next-token accuracy over the assistant tokens, for the base and
the tuned model, plus greedy replies of both to held-out prompts, next to the reference answer.
Embedding: recall@1, recall@3 and MRR of held-out queries against every distinct passage of the
dataset, for the base and the tuned encoder, plus the top passage of each for a few queries.

Metrics are computed here (no sklearn dependency). Macro averages run over the labels that occur
in the references or the predictions, as sklearn does when it is not given a label list: a label
absent from both carries no information about the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from workers.training.batching import collate, evaluation_batches, group_ids, pad_sequences
from workers.training.data import Encoded, EncodedPair, encode_dialogue, encode_sentiment, render_chat
from workers.training.modeling import autocast, base_behaviour, classifier_logits, labelled_logits
from workers.training.retrieval import (
    answer_ranks,
    in_batch_negatives_loss,
    retrieval_metrics,
    retrieval_task,
    sentence_embeddings,
    shared_answers,
)

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


@torch.no_grad()
def embed_sequences(model, sequences: Sequence[Sequence[int]], pad_token_id: int, *, batch_size: int,
                    device: str) -> torch.Tensor:
    """(N, H) unit vectors on the CPU, in input order, of token id sequences (length-sorted batches)."""
    was_training = model.training
    model.eval()
    vectors: list[torch.Tensor] = []
    order: list[int] = []
    for indices in evaluation_batches([len(ids) for ids in sequences], batch_size):
        input_ids, attention_mask = pad_sequences([sequences[i] for i in indices], pad_token_id)
        with autocast(device):
            vectors.append(sentence_embeddings(model, input_ids.to(device), attention_mask.to(device)).cpu())
        order.extend(indices)
    model.train(was_training)
    if not vectors:
        return torch.zeros((0, 0))
    stacked = torch.cat(vectors)
    return stacked[torch.tensor(order).argsort()]


def pair_scores(model, encoded: Sequence[EncodedPair], pad_token_id: int, *, batch_size: int, device: str) -> dict:
    """Validation during training: the in-batch loss over batches of about `batch_size` rows (as in
    training), and the recall@1 of each distinct query among the distinct validation passages."""
    query_keys = [tuple(row.query_ids) for row in encoded]
    passage_keys = [tuple(row.passage_ids) for row in encoded]
    queries, passages, relevant = retrieval_task(query_keys, list(zip(query_keys, passage_keys, strict=True)))

    def vectors(keys: list) -> torch.Tensor:
        return embed_sequences(model, [list(key) for key in keys], pad_token_id, batch_size=batch_size, device=device)

    query_vectors, passage_vectors = vectors(queries), vectors(passages)
    query_position = {key: i for i, key in enumerate(queries)}
    passage_position = {key: i for i, key in enumerate(passages)}
    query_row = torch.tensor([query_position[key] for key in query_keys], dtype=torch.long)
    passage_row = torch.tensor([passage_position[key] for key in passage_keys], dtype=torch.long)
    query_groups, passage_groups = group_ids(query_keys), group_ids(passage_keys)
    loss = 0.0
    # Nearly equal chunks: a last batch of one row would have no negatives and a loss of 0.
    for chunk in torch.arange(len(encoded)).tensor_split(max(1, math.ceil(len(encoded) / batch_size))):
        loss += float(in_batch_negatives_loss(query_vectors[query_row[chunk]], passage_vectors[passage_row[chunk]],
                                              shared_answers(query_groups[chunk], passage_groups[chunk])))
    ranks, _ = answer_ranks(query_vectors, passage_vectors, relevant)
    return {"loss": loss / len(encoded) if encoded else 0.0, "recall_at_1": retrieval_metrics(ranks)["recall_at_1"]}


def retrieval_calibration(model, tokenizer, queries: list[str], passages: list[str], relevant: Sequence[set[int]], *,
                          max_seq_length: int, batch_size: int, device: str) -> dict:
    """How a knowledge base turns this model's similarities into confidence (knowledge/calibration.py),
    fitted on the held-out queries' right passages against their best wrong ones — scored as a knowledge
    base scores them: each passage at the best of its vectors (itself and its sentences)."""
    from knowledge.calibration import fit
    from knowledge.chunking import passage_and_sentences

    def vectors(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, truncation=True, max_length=max_seq_length)["input_ids"] if texts else []
        return embed_sequences(model, ids, tokenizer.pad_token_id, batch_size=batch_size, device=device)

    texts = [passage_and_sentences(passage) for passage in passages]
    owners = torch.tensor([i for i, parts in enumerate(texts) for _ in parts])
    rows = vectors(queries) @ vectors([text for parts in texts for text in parts]).T
    scores = torch.full((len(queries), len(passages)), -2.0).scatter_reduce(
        1, owners.expand(len(queries), -1), rows, reduce="amax")
    right, wrong = [], []
    for row, answers in zip(scores, relevant, strict=True):
        mask = torch.zeros(len(row), dtype=torch.bool)
        mask[sorted(answers)] = True
        right.append(float(row[mask].max()))
        if (~mask).any():
            wrong.append(float(row[~mask].max()))
    return fit(right, wrong).to_dict()


def evaluate_retrieval(model, tokenizer, rows: Sequence[dict], pool_rows: Sequence[dict], *, max_seq_length: int,
                       device: str = "cpu", base_model=None, batch_size: int = 64, sample_count: int = 8) -> dict:
    """Base and tuned encoder on the distinct queries of `rows`, each against every distinct passage of
    `pool_rows` (and `rows`). A query's right answers are all the passages it is paired with.

    `base_model` is needed only for fully tuned models; an adapter is simply switched off.
    """
    queries, passages, relevant = retrieval_task(
        [row["query"] for row in rows], [(row["query"], row["passage"]) for row in [*pool_rows, *rows]])

    def token_ids(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, truncation=True, max_length=max_seq_length)["input_ids"] if texts else []

    query_ids, passage_ids = token_ids(queries), token_ids(passages)

    def score(encoder) -> tuple[dict, list[int], list[int]]:
        query_vectors, passage_vectors = (embed_sequences(encoder, ids, tokenizer.pad_token_id, batch_size=batch_size,
                                                          device=device) for ids in (query_ids, passage_ids))
        ranks, tops = answer_ranks(query_vectors, passage_vectors, relevant)
        return {**retrieval_metrics(ranks), "passages": len(passages)}, ranks, tops

    tuned, tuned_ranks, tuned_tops = score(model)
    tuned["calibration"] = retrieval_calibration(model, tokenizer, list(queries), list(passages), relevant,
                                                 max_seq_length=max_seq_length, batch_size=batch_size, device=device)
    if base_model is not None:
        base, base_ranks, base_tops = score(base_model)
    else:
        with base_behaviour(model) as plain:
            base, base_ranks, base_tops = score(plain)
    reference: dict[str, str] = {}
    for row in rows:
        reference.setdefault(row["query"], row["passage"])
    samples = [{"query": query, "reference": reference[query], "base": passages[base_tops[i]],
                "tuned": passages[tuned_tops[i]], "base_rank": base_ranks[i], "tuned_rank": tuned_ranks[i]}
               for i, query in enumerate(queries[:sample_count])]
    return {"task": "embedding", "tuned": tuned, "baselines": {"base": base}, "samples": samples}
