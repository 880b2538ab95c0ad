"""The answer checker: the probability that a passage answers a customer's question.

Cosine similarity ranks passages but cannot tell "about the same thing" from "answers it": an
unanswerable question ("when was Acme founded?") is often as similar to some passage as an answerable
one is to its own (docs/quality.md). The checker is a cross-encoder — all-MiniLM-L6-v2 reading the
question and the passage together, with a LoRA adapter and a two-label head — trained by
`manage.py train_answer_checker` on 16 other businesses' help centres and customer questions
(finetune/answer_checker_data/) and shipped in knowledge/answer_checker/ (3 MB). It is served by the
engine's classification path like any tuned classifier, batched with everything else.

Pure Python here: `pair_text` is shared by training and serving; `score` only talks to the engine.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHECKER_FOLDER = Path(__file__).resolve().parent / "answer_checker"
CHECKER_KEY = "checker:answers"
BASE_SLUG = "all-minilm-l6-v2"
LABELS = ["unrelated", "answers"]
SEPARATOR = " [SEP] "
# The checker reads the question and the start of the passage: 160 word pieces cover an FAQ entry.
MAX_QUESTION_CHARS = 300
MAX_PASSAGE_CHARS = 600
# How many of the most similar passages it reads per question (the others are not candidates).
CHECKED_CANDIDATES = 6


def _clean(text: str) -> str:
    # A customer writing "[SEP]" must not be able to move the boundary between question and passage.
    return " ".join(text.replace("[SEP]", " ").replace("[CLS]", " ").split())


def pair_text(question: str, title: str, text: str) -> str:
    """What the checker reads: the question, then where the passage sits and what it says."""
    return f"{_clean(question)[:MAX_QUESTION_CHARS]}{SEPARATOR}{_clean(title)}: {_clean(text)[:MAX_PASSAGE_CHARS]}"


def available() -> bool:
    return (CHECKER_FOLDER / "adapter_config.json").exists()


def spec() -> Any:
    """The engine's spec of the checker (worker-only: resolves the base model's folder)."""
    from store.models import FoundationModel
    from store.serving.loading import model_folder
    from store.serving.protocol import ModelSpec

    base = FoundationModel.objects.filter(slug=BASE_SLUG).first()
    if base is None or not available():
        return None
    return ModelSpec(CHECKER_KEY, "classifier", str(model_folder(base)), str(CHECKER_FOLDER), "lora", LABELS)


def score(engine: Any, queries: list[str], candidates: list[dict], origins: dict[int, list[int]]) -> list[float]:
    """The checker's probability for each candidate (the best over the queries that retrieved it);
    the candidates beyond the CHECKED_CANDIDATES most similar get 0. Without a checker, the cosine
    similarity stands in (and the threshold then means similarity)."""
    from knowledge.worker import _Answer
    from store.serving.protocol import ClassificationRequest

    checker = spec()
    if checker is None:
        logger.warning("no answer checker in %s: confidence is the embeddings' similarity", CHECKER_FOLDER)
        return [float(candidate["similarity"]) for candidate in candidates]
    pairs: list[tuple[int, str]] = []
    for position, candidate in enumerate(candidates[:CHECKED_CANDIDATES]):
        for query_index in origins.get(candidate["passage_id"], [0]):
            pairs.append((position, pair_text(queries[query_index], candidate["title"], candidate["text"])))
    if not pairs:
        return [0.0] * len(candidates)
    answer = _Answer()
    engine.submit_classification(ClassificationRequest(f"check-{uuid.uuid4().hex}", CHECKER_KEY,
                                                       [text for _, text in pairs]), answer, spec=checker)
    results = answer.wait()["results"]
    confidence = [0.0] * len(candidates)
    for (position, _), result in zip(pairs, results, strict=True):
        confidence[position] = max(confidence[position], float(result["scores"][LABELS[1]]))
    return confidence


def warm_up(engine: Any) -> None:
    """Load the checker at worker start, so the first customer does not wait for it."""
    from knowledge.worker import _Answer
    from store.serving.protocol import ClassificationRequest

    checker = spec()
    if checker is None:
        return
    answer = _Answer()
    engine.submit_classification(ClassificationRequest(f"warmup-{uuid.uuid4().hex}", CHECKER_KEY,
                                                       [pair_text("hello", "Greeting", "Hello!")]), answer,
                                 spec=checker)
    answer.wait()
