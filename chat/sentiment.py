"""Score every customer message with the widget's sentiment deployment (batched by the engine)."""

from __future__ import annotations

import asyncio
import logging
import weakref

from asgiref.sync import sync_to_async
from django.db import transaction

from chat.conversations import agents_group, announce_console
from chat.handoff import rolling, sentiment_value
from chat.models import Conversation, Message
from chat.widgets import sentiment_deployment_for
from core.broadcast import notify
from store.serving.client import InferenceError, InferenceUnavailable, classify, new_request_id
from store.serving.protocol import ClassificationRequest
from store.usage import record_usage

logger = logging.getLogger(__name__)
SCORING_TIMEOUT = 10.0


def _target(message_id: int):
    message = Message.objects.select_related("conversation__widget__organization",
                                             "conversation__widget__sentiment_deployment").get(pk=message_id)
    return message, sentiment_deployment_for(message.conversation.widget)


def record_sentiment(message: Message, label: str, score: float, scores: dict[str, float]) -> Conversation:
    """Store the label on the message and fold it into the conversation's rolling score and streak."""
    value = sentiment_value(scores)
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(sentiment_label=label, sentiment_score=score,
                                                     sentiment_value=value)
        # Messages of one conversation are scored one after another (chat/pipeline.py holds a lock per
        # conversation), so read-modify-write of the rolling score is safe here.
        conversation = Conversation.objects.get(pk=message.conversation_id)
        previous = conversation.sentiment_score
        conversation.sentiment_score = rolling(previous, value)
        conversation.sentiment_trend = conversation.sentiment_score - (previous if previous is not None else 0.0)
        conversation.negative_streak = conversation.negative_streak + 1 if label == "negative" else 0
        conversation.save(update_fields=["sentiment_score", "sentiment_trend", "negative_streak"])
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
        self.pending: list[tuple[str, asyncio.Future]] = []
        self.in_flight = 0

    async def score(self, text: str) -> dict:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((text, future))
        if self.in_flight < self.MAX_IN_FLIGHT:
            self.in_flight += 1
            asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:self.MAX_BATCH], self.pending[self.MAX_BATCH:]
                try:
                    result = await classify(ClassificationRequest(
                        request_id=new_request_id(), model_key=self.model_key, texts=[text for text, _ in batch]))
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), item in zip(batch, result["results"], strict=True):
                    if not future.done():  # its caller may have timed out meanwhile
                        future.set_result(item)
        finally:
            self.in_flight -= 1


_scorers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Scorer]] = weakref.WeakKeyDictionary()


def _scorer(model_key: str) -> _Scorer:
    per_loop = _scorers.setdefault(asyncio.get_running_loop(), {})
    if model_key not in per_loop:
        per_loop[model_key] = _Scorer(model_key)
    return per_loop[model_key]


async def score_message(message_id: int) -> bool:
    """True if the message was scored. A missing model or worker only skips scoring."""
    message, deployment = await sync_to_async(_target)(message_id)
    if deployment is None:
        return False
    try:
        item = await asyncio.wait_for(_scorer(deployment.model_key).score(message.text), SCORING_TIMEOUT)
    except (InferenceError, InferenceUnavailable, TimeoutError) as error:
        logger.warning("could not score message %s: %s", message_id, error)
        return False
    await sync_to_async(record_sentiment)(message, item["label"], item["score"], item["scores"])
    await sync_to_async(record_usage)(message.conversation.organization_id, deployment.slug,
                                      item.get("tokens", 0), 0, source="widget")
    return True
