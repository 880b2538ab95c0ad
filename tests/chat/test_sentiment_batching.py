"""Customer messages are scored in batches: one request to the inference worker carries every text
that arrived while the previous one was in flight, and each text still gets its own label."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import sentiment
from core import background
from store.inference.client import InferenceUnavailable
from store.models import UsageDaily
from store.usage import record_usage


class SlowClassifier:
    """Stands in for the inference worker: labels by keyword, takes a while, records each request."""

    def __init__(self, fail: bool = False) -> None:
        self.requests: list[list[str]] = []
        self.fail = fail

    async def __call__(self, request):
        self.requests.append(list(request.texts))
        await asyncio.sleep(0.05)
        if self.fail:
            raise InferenceUnavailable("no inference worker")
        results = [{"label": "negative" if "late" in t else "positive", "score": 0.9, "scores": {}, "tokens": len(t)}
                   for t in request.texts]
        return {"results": results, "prompt_tokens": sum(len(t) for t in request.texts)}


@pytest.fixture
def classifier(monkeypatch):
    fake = SlowClassifier()
    monkeypatch.setattr(sentiment, "classify", fake)
    return fake


async def test_concurrent_messages_share_requests_and_keep_their_own_labels(classifier):
    texts = [f"parcel {i} is late" if i % 3 == 0 else f"thanks for order {i}" for i in range(30)]
    scorer = sentiment._scorer("moods-model")
    items = await asyncio.gather(*(scorer.score(text) for text in texts))
    assert [item["label"] for item in items] == ["negative" if "late" in t else "positive" for t in texts]
    assert [item["tokens"] for item in items] == [len(t) for t in texts]
    assert len(classifier.requests) <= sentiment._Scorer.MAX_IN_FLIGHT < len(texts)
    assert sorted(t for request in classifier.requests for t in request) == sorted(texts)  # each text once


async def test_a_lone_message_is_sent_at_once(classifier):
    started = asyncio.get_running_loop().time()
    item = await sentiment._scorer("moods-model").score("my parcel is late")
    assert item["label"] == "negative"
    assert classifier.requests == [["my parcel is late"]]
    assert asyncio.get_running_loop().time() - started < 1.0  # no batching window when idle


async def test_batches_are_capped(classifier):
    texts = [f"message {i}" for i in range(sentiment._Scorer.MAX_BATCH * 2 + 5)]
    await asyncio.gather(*(sentiment._scorer("moods-model").score(t) for t in texts))
    assert max(len(r) for r in classifier.requests) == sentiment._Scorer.MAX_BATCH
    assert sum(len(r) for r in classifier.requests) == len(texts)


async def test_models_are_batched_separately(classifier):
    await asyncio.gather(sentiment._scorer("model-a").score("a is late"), sentiment._scorer("model-b").score("b"))
    assert sorted(classifier.requests) == [["a is late"], ["b"]]


async def test_a_failed_request_fails_every_message_in_it_and_the_next_ones_still_run(monkeypatch):
    failing = SlowClassifier(fail=True)
    monkeypatch.setattr(sentiment, "classify", failing)
    scorer = sentiment._scorer("moods-model")
    outcomes = await asyncio.gather(*(scorer.score(f"text {i}") for i in range(5)), return_exceptions=True)
    assert all(isinstance(outcome, InferenceUnavailable) for outcome in outcomes)
    working = SlowClassifier()
    monkeypatch.setattr(sentiment, "classify", working)
    assert (await scorer.score("it came late"))["label"] == "negative"
    assert scorer.in_flight == 0


async def test_a_caller_that_gave_up_does_not_disturb_the_others(classifier):
    scorer = sentiment._scorer("moods-model")
    impatient = asyncio.ensure_future(asyncio.wait_for(scorer.score("i will not wait"), 0.01))
    patient = asyncio.ensure_future(scorer.score("my shoes are late"))
    with pytest.raises(TimeoutError):
        await impatient
    assert (await patient)["label"] == "negative"


async def test_texts_whose_callers_gave_up_are_not_sent_to_the_model(classifier, monkeypatch):
    monkeypatch.setattr(sentiment._Scorer, "MAX_IN_FLIGHT", 1)
    scorer = sentiment._scorer("moods-model")
    first = asyncio.ensure_future(scorer.score("first"))
    await asyncio.sleep(0)  # "first" is in flight; the next two wait for the following request
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(scorer.score("impatient"), 0.01)
    assert (await scorer.score("patient"))["label"] == "positive"
    await first
    assert classifier.requests == [["first"], ["patient"]]


@pytest.mark.django_db(transaction=True)
async def test_usage_is_metered_once_per_batch_and_deployment(classifier, alice, charlie, monkeypatch):
    updates = []
    monkeypatch.setattr(sentiment, "record_usage", lambda *args, **kwargs: updates.append((args, kwargs))
                        or record_usage(*args, **kwargs))
    alice_meter = sentiment.Meter(alice.organization.pk, "acme-sentiment")
    charlie_meter = sentiment.Meter(charlie.organization.pk, "charlie-moods")
    scorer = sentiment._scorer("moods-model")
    texts = [(f"alice text {i}", alice_meter) for i in range(5)] + [("charlie text", charlie_meter)]
    await asyncio.gather(*(scorer.score(text, meter) for text, meter in texts))
    loop = asyncio.get_running_loop()  # the usage is written by background tasks: wait for them
    await asyncio.gather(*(task for task in list(background._running) if task.get_loop() is loop))
    rows = await sync_to_async(lambda: {(row.organization_id, row.model): (row.requests, row.prompt_tokens, row.source)
                                        for row in UsageDaily.objects.all()})()
    assert rows == {
        (alice.organization.pk, "acme-sentiment"): (5, sum(len(t) for t, m in texts if m == alice_meter), "widget"),
        (charlie.organization.pk, "charlie-moods"): (1, len("charlie text"), "widget"),
    }
    assert len(updates) <= 2 * len(classifier.requests) < 2 * len(texts)  # per batch and meter, not per text
