"""Score every customer message with the widget's sentiment deployment (batched by the engine)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F, FloatField, Value
from django.db.models.functions import Coalesce

from chat.conversations import agents_group, announce_console
from chat.handoff import rolling, sentiment_value
from chat.models import Conversation, Message, Widget
from chat.widgets import sentiment_deployment_for
from core.background import in_background
from core.broadcast import notify
from store.inference.client import InferenceError, InferenceUnavailable, classify, new_request_id
from store.inference.protocol import ClassificationRequest
from store.usage import record_usage

logger = logging.getLogger(__name__)
SCORING_TIMEOUT = 10.0  # per request to the inference worker


@dataclass(frozen=True)
class Meter:
    """Whose usage a scored text counts as: the organization and its sentiment deployment."""

    organization_id: int
    deployment_slug: str


@dataclass(frozen=True)
class ScoringTarget:
    """Which model scores a widget's customer messages, and whose usage that is."""

    model_key: str
    meter: Meter


def scoring_target(widget: Widget) -> ScoringTarget | None:
    """Load the widget with `select_related("sentiment_deployment")` to spare a query."""
    deployment = sentiment_deployment_for(widget)
    if deployment is None:
        return None
    return ScoringTarget(deployment.model_key, Meter(widget.organization_id, deployment.slug))


def record_sentiment(message: Message, label: str, score: float, scores: dict[str, float]) -> Conversation | None:
    """Store the label on the message and fold it into the conversation's rolling score and streak;
    None (nothing changed) if the message was labelled before (its turn ran again after a crash).

    The fold is one UPDATE computed by the database from the row as it is (F expressions), so folds
    from two processes never lose one; the caller's turn (chat/turns.py) keeps them in written order.
    """
    value = sentiment_value(scores)
    with transaction.atomic():
        labelled = Message.objects.filter(pk=message.pk, sentiment_label="").update(
            sentiment_label=label, sentiment_score=score, sentiment_value=value)
        if not labelled:
            return None
        previous = Coalesce(F("sentiment_score"), Value(0.0), output_field=FloatField())
        folded = rolling(previous, value)  # type: ignore[arg-type]  # the same formula, computed in SQL
        Conversation.objects.filter(pk=message.conversation_id).update(
            sentiment_score=folded, sentiment_trend=folded - previous,
            negative_streak=F("negative_streak") + 1 if label == "negative" else 0)
        conversation = Conversation.objects.get(pk=message.conversation_id)
        payload = {"type": "chat.sentiment", "seq": message.seq, "label": label, "score": score, "value": value,
                   "conversation_score": conversation.sentiment_score}
        conversation_id = conversation.pk
        transaction.on_commit(lambda: notify(agents_group(conversation_id), payload))
        announce_console(conversation)
    return conversation


class _Scorer:
    """Scores texts for one model in as few requests as the load allows ("natural batching").

    A text that arrives while requests are in flight waits for the next one, which carries every
    text that gathered meanwhile: no timer, so an idle site scores at once, and a busy one sends one
    request per batch instead of one Celery round trip per message.
    """

    MAX_IN_FLIGHT = 2
    MAX_BATCH = 64

    def __init__(self, model_key: str) -> None:
        self.model_key = model_key
        self.pending: list[tuple[str, asyncio.Future, Meter | None]] = []
        self.in_flight = 0

    async def score(self, text: str, meter: Meter | None = None) -> dict:
        """The text's label, scores and token count; usage is counted per batch for `meter`."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((text, future, meter))
        if self.in_flight < self.MAX_IN_FLIGHT:
            self.in_flight += 1
            in_background(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                # Texts whose callers gave up waiting (timed out) are not worth the model's time.
                waiting = [entry for entry in self.pending if not entry[1].done()]
                batch, self.pending = waiting[:self.MAX_BATCH], waiting[self.MAX_BATCH:]
                if not batch:
                    break
                try:
                    result = await asyncio.wait_for(classify(ClassificationRequest(
                        request_id=new_request_id(), model_key=self.model_key, texts=[text for text, _, _ in batch])),
                        SCORING_TIMEOUT)
                except Exception as error:
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future, _), item in zip(batch, result["results"], strict=True):
                    if not future.done():  # its caller may have timed out meanwhile
                        future.set_result(item)
                # In the background: the next batch need not wait for the database.
                in_background(_meter_batch(
                    [(meter, item) for (_, _, meter), item in zip(batch, result["results"], strict=True)]))
        finally:
            self.in_flight -= 1


async def _meter_batch(scored: list[tuple[Meter | None, dict]]) -> None:
    """One usage update per organization and deployment in the batch, not one per message."""
    totals: dict[Meter, list[int]] = {}
    for meter, item in scored:
        if meter is not None:
            counts = totals.setdefault(meter, [0, 0])
            counts[0] += 1
            counts[1] += int(item.get("tokens", 0))
    for meter, (requests, tokens) in totals.items():
        try:
            await sync_to_async(record_usage)(meter.organization_id, meter.deployment_slug, tokens, 0,
                                              source="widget", requests=requests)
        except Exception:  # metering must not stop the scoring of the next batch
            logger.exception("could not record the sentiment usage of %s", meter)


_scorers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Scorer]] = weakref.WeakKeyDictionary()


def _scorer(model_key: str) -> _Scorer:
    per_loop = _scorers.setdefault(asyncio.get_running_loop(), {})
    if model_key not in per_loop:
        per_loop[model_key] = _Scorer(model_key)
    return per_loop[model_key]


async def score_text(target: ScoringTarget | None, text: str) -> dict | None:
    """The text's label (usage metered), or None when there is no sentiment model or it is
    unavailable: scoring is skipped, never the message."""
    if target is None:
        return None
    try:  # no deadline on the wait in line (a busy model still scores everything); each request has one
        return await _scorer(target.model_key).score(text, target.meter)
    except (InferenceError, InferenceUnavailable, TimeoutError) as error:
        logger.warning("could not score a message with %s: %s", target.model_key, error)
        return None
