"""Serve a deployment: the one path from a conversation to the bot's reply.

The chat widget, the playground and `/v1/chat/completions` all call `stream_reply`, so a deployment
answers the same way everywhere. With a knowledge base attached (and a policy other than off):

    customer turn -> retrieve (worker: embed the turn's queries, exact search, calibrated confidence) -> confident?
      no  -> "I don't know that one — shall I get someone?" (the caller hands over if asked to)
      yes -> quote: the passage itself
             grounded: the model phrases it from the passages; every sentence is checked before it
             is shown (faithfulness.py) and from the first one that states an unsupported specific on,
             the reply is the quote answer instead
      -> the reply, its citations, its confidence; usage metered here

Without knowledge, the deployment's model answers on its own, as before.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from knowledge import client as knowledge_client
from knowledge.faithfulness import Support, check, split_complete
from knowledge.models import AnswerPolicy, DeploymentKnowledge, WhenUnsure
from knowledge.policy import (
    Candidate,
    Decision,
    decide,
    dont_know_text,
    entry_question,
    not_sure_text,
    quote_text,
    retrieval_queries,
    small_talk,
)
from knowledge.prompting import grounded_messages
from store.api.completions import with_system_prompt
from store.api.protocol import Outcome
from store.deploy import stream_generation  # workers, or an organization's upstream: decided there
from store.inference.client import new_request_id
from store.inference.protocol import GenerationRequest
from store.models import ApiKey, Deployment
from store.usage import record_usage

logger = logging.getLogger(__name__)


@dataclass
class Sampling:
    """A caller's generation options; None takes the deployment's."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


@dataclass
class Served:
    """What answers: a deployment, or a tuned or catalog model called by its id (which has no knowledge)."""

    organization_id: int
    model_id: str  # the name usage is metered under: the deployment's slug or the model id
    model_key: str
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    deployment_id: int | None = None

    @classmethod
    def deployment(cls, deployment: Deployment) -> Served:
        return cls(deployment.organization_id, deployment.slug, deployment.model_key, deployment.system_prompt,
                   deployment.temperature, deployment.top_p, deployment.max_tokens, deployment.pk)


@dataclass
class KnowledgeSettings:
    knowledge_base_id: int
    policy: str
    threshold: float
    handoff: bool
    index_key: str = ""

    @classmethod
    def of(cls, deployment_id: int | None) -> KnowledgeSettings | None:
        if deployment_id is None:
            return None
        attached = DeploymentKnowledge.objects.select_related("knowledge_base__embedding_base").filter(
            deployment_id=deployment_id).first()
        if attached is None or not attached.active:
            return None
        assert attached.knowledge_base is not None
        return cls(attached.knowledge_base.pk, attached.policy, attached.threshold,
                   attached.when_unsure == WhenUnsure.HANDOFF, attached.knowledge_base.index_key)


@dataclass
class ReplyResult:
    text: str
    outcome: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    confidence: float | None = None
    passages: list[Candidate] = field(default_factory=list)
    handoff: bool = False  # the bot did not know and the deployment hands such conversations over
    unsupported: list[str] = field(default_factory=list)  # what failed the check (replaced replies)
    candidates: list[Candidate] = field(default_factory=list)  # everything retrieval found, for "ask"
    retrieval_ms: float | None = None  # how long retrieval and the check took (before any generation)
    unstated: str = ""  # did not know because the passages found state no such specific ("price")
    searched: str = ""  # the customer's message as retrieval searched it, where the spelling was corrected
    related: list[Candidate] = field(default_factory=list)  # other entries offered under the answer
    marked_wrong: list[str] = field(default_factory=list)  # entries set aside: an agent marked them wrong for it

    @property
    def citations(self) -> list[dict]:
        return [passage.citation() for passage in self.passages]

    def grounding(self) -> dict:
        """The extra field of /v1 responses (and what the console keeps with a bot message)."""
        return {"outcome": self.outcome, "confidence": None if self.confidence is None else round(self.confidence, 3),
                **({"unsupported": self.unsupported} if self.unsupported else {}),
                **({"unstated": self.unstated} if self.unstated else {}),
                **({"searched": self.searched} if self.searched else {}),
                **({"related": [{"passage_id": p.passage_id, "title": p.title, "question": entry_question(p)}
                                for p in self.related]} if self.related else {}),
                **({"retrieval_ms": round(self.retrieval_ms, 1)} if self.retrieval_ms is not None else {})}

    def record(self) -> dict:
        """Stored with a bot message: the console shows the passages used and the confidence."""
        return {**self.grounding(), "passages": [{**p.citation(), "text": p.text[:2000]} for p in self.passages],
                **({"marked_wrong": self.marked_wrong} if self.marked_wrong else {})}


@dataclass
class ReplyEvent:
    kind: str  # "text" | "done"
    text: str = ""
    result: ReplyResult | None = None


def _generation(served: Served, messages: list[dict], sampling: Sampling) -> GenerationRequest:
    """The engine request for `messages` (system prompt included) with the deployment's defaults."""
    return GenerationRequest(
        request_id=new_request_id(), model_key=served.model_key, messages=messages,
        max_tokens=sampling.max_tokens or served.max_tokens,
        temperature=served.temperature if sampling.temperature is None else sampling.temperature,
        top_p=served.top_p if sampling.top_p is None else sampling.top_p,
        stop=list(sampling.stop), seed=sampling.seed, frequency_penalty=sampling.frequency_penalty,
        presence_penalty=sampling.presence_penalty)


async def stream_reply(served: Served, turns: list[dict], *, source: str, api_key: ApiKey | None = None,
                       sampling: Sampling | None = None) -> AsyncGenerator[ReplyEvent, None]:
    """The reply to `turns` (role/content dicts; the caller's system messages join the deployment's),
    streamed: text pieces, then `done` with the authoritative result. Usage is metered here.

    Raises store.inference.client.InferenceUnavailable / InferenceError when no worker can serve it.
    """
    sampling = sampling or Sampling()
    settings = await sync_to_async(KnowledgeSettings.of)(served.deployment_id)
    result: ReplyResult | None = None
    if settings is None:
        stream = _plain(served, turns, sampling)
    else:
        stream = _from_knowledge(served, turns, sampling, settings)
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if event.kind == "done":
                result = event.result
            yield event
    if result is not None:
        await sync_to_async(record_usage)(served.organization_id, served.model_id, result.prompt_tokens,
                                          result.completion_tokens, api_key=api_key, source=source)


async def _plain(served: Served, turns: list[dict], sampling: Sampling) -> AsyncGenerator[ReplyEvent, None]:
    request = _generation(served, with_system_prompt(turns, served.system_prompt), sampling)
    async with contextlib.aclosing(stream_generation(request)) as stream:
        async for event in stream:
            if event.kind == "text":
                yield ReplyEvent("text", event.text)
            elif event.kind == "done":
                info = event.info or {}
                yield ReplyEvent("done", result=ReplyResult(
                    info.get("text", ""), Outcome.GENERATED, _finish_reason(info), info.get("prompt_tokens", 0),
                    info.get("completion_tokens", 0)))


def _finish_reason(info: dict) -> str:
    return "length" if info.get("finish_reason") == "length" else "stop"


async def _from_knowledge(served: Served, turns: list[dict], sampling: Sampling,
                          settings: KnowledgeSettings) -> AsyncGenerator[ReplyEvent, None]:
    customer = [turn for turn in turns if turn["role"] == "user"]
    last = customer[-1]["content"] if customer else ""
    canned = small_talk(last)
    if canned is not None:
        yield ReplyEvent("text", canned)
        yield ReplyEvent("done", result=ReplyResult(canned, Outcome.SMALL_TALK))
        return
    started = time.perf_counter()
    lookup = retrieval_queries(turns)
    found = await knowledge_client.retrieve(settings.knowledge_base_id, lookup, index_key=settings.index_key)
    candidates, query_tokens, searched = found.candidates, found.prompt_tokens, found.corrected(lookup)
    decision = decide(candidates, settings.threshold, lookup.parts_from, message=last)
    retrieval_ms = 1000 * (time.perf_counter() - started)
    if not decision.answer or settings.policy == AnswerPolicy.QUOTE:
        text, outcome = quoted_reply(decision, settings.handoff)
        yield ReplyEvent("text", text)
        yield ReplyEvent("done", result=ReplyResult(text, outcome, prompt_tokens=query_tokens,
                                                    confidence=decision.confidence,
                                                    handoff=settings.handoff and not decision.answer,
                                                    passages=decision.shown, candidates=candidates,
                                                    retrieval_ms=retrieval_ms, unstated=decision.unstated,
                                                    searched=searched, related=decision.related,
                                                    marked_wrong=found.marked_wrong))
        return
    quote = quote_text(decision.passages)
    async for event in _grounded(served, turns, sampling, decision.passages, quote, query_tokens,
                                 decision.confidence):
        if event.result is not None:
            event.result.candidates, event.result.retrieval_ms = candidates, retrieval_ms
            event.result.searched, event.result.related = searched, decision.related
            event.result.marked_wrong = found.marked_wrong
        yield event


def quoted_outcome(decision: Decision) -> Outcome:
    """Which reply a decision makes without generating: the entries that answer, "not sure", or "I don't know"."""
    if decision.answer:
        return Outcome.QUOTED
    return Outcome.NOT_SURE if decision.closest is not None else Outcome.DID_NOT_KNOW


def quoted_reply(decision: Decision, handoff: bool) -> tuple[str, Outcome]:
    """What the bot says without generating: the entries that answer, else "not sure" with the closest
    entry, else "I don't know" (each offering a person when `handoff`)."""
    outcome = quoted_outcome(decision)
    if outcome == Outcome.QUOTED:
        return quote_text(decision.passages), outcome
    if outcome == Outcome.NOT_SURE:
        assert decision.closest is not None
        return not_sure_text(decision.closest, handoff), outcome
    return dont_know_text(handoff), outcome


async def _grounded(served: Served, turns: list[dict], sampling: Sampling, passages: list[Candidate],
                    quote: str, query_tokens: int, confidence: float) -> AsyncGenerator[ReplyEvent, None]:
    """The model phrases the answer; each finished sentence is shown only once it passes the check."""
    passage_dicts = [{"title": p.title, "text": p.text} for p in passages]
    system = "\n\n".join([served.system_prompt, *(t["content"] for t in turns if t["role"] == "system")])
    messages = grounded_messages(system, turns, passage_dicts)
    support = Support.of([*(p.text for p in passages), *(p.title for p in passages),
                          *(turn["content"] for turn in turns if turn["role"] == "user")])
    request = _generation(served, messages, sampling)
    shown, pending, failed, info = "", "", None, {}
    async with contextlib.aclosing(stream_generation(request)) as stream:
        async for event in stream:
            if event.kind == "text":
                sentences, pending = split_complete(pending + event.text)
            elif event.kind == "done":
                info = event.info or {}
                final = info.get("text", shown + pending)
                finished, tail = split_complete(final[len(shown):] if final.startswith(shown) else pending)
                sentences, pending = [*finished, tail], ""
            else:
                continue
            for sentence in sentences:
                if not sentence:
                    continue
                verdict = check(sentence, support)
                if not verdict.ok:
                    failed = verdict
                    break
                shown += sentence
                yield ReplyEvent("text", sentence)
            if failed is not None:
                break  # closing the stream tells the worker to stop generating
    prompt_tokens = query_tokens + int(info.get("prompt_tokens", 0) or 0)
    completion_tokens = int(info.get("completion_tokens", 0) or 0)
    if failed is None and shown.strip():
        yield ReplyEvent("done", result=ReplyResult(shown.strip(), Outcome.GROUNDED, _finish_reason(info),
                                                    prompt_tokens, completion_tokens, confidence, passages))
        return
    # A specific the passages do not hold (or nothing at all): the passages' own words instead. What was
    # shown already stated nothing unsupported, so it stays and the quote follows it.
    reasons = [s.text for s in failed.unsupported] if failed is not None else ["empty reply"]
    logger.info("grounded reply of %s replaced by the quote answer: %s", served.model_id, ", ".join(reasons))
    joiner = "\n\n" if shown.strip() else ""
    yield ReplyEvent("text", joiner + quote)
    yield ReplyEvent("done", result=ReplyResult((shown + joiner + quote).strip(), Outcome.REPLACED, "stop",
                                                prompt_tokens, completion_tokens, confidence, passages,
                                                unsupported=reasons))
