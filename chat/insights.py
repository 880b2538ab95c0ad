"""The sentiment review dashboard: how conversations went over a period."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

from django.db.models import Avg, Count, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate

from accounts.models import Organization
from chat.conversations import knowledge_base_of
from chat.handoff import BOT_DID_NOT_KNOW
from chat.models import Author, Conversation, Message
from chat.records import day_bounds
from knowledge.models import KnowledgeSource
from knowledge.sources import answer_title
from store.api.protocol import Outcome

# The review page lists the questions the bot did not know, or answered with an entry an agent marked wrong,
# most asked first: the business's next answers to write. The latest UNKNOWN_REPLIES_READ such replies of
# the period are grouped by question.
UNKNOWN_QUESTIONS_SHOWN = 20
UNKNOWN_REPLIES_READ = 500


def insights(organization: Organization, start: date, end: date) -> dict:
    """The dashboard's figures for start..end (a range core.bounds.date_range has accepted).

    Counted by the database: the work in Python grows with the number of days, never with messages.
    """
    low, high = day_bounds(start, end)
    conversations = Conversation.objects.filter(organization=organization, created_at__range=(low, high))
    scored = Message.objects.filter(conversation__organization=organization, author=Author.CUSTOMER,
                                    created_at__range=(low, high)).exclude(sentiment_label="")
    per_day: dict[date, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for row in (scored.annotate(day=TruncDate("created_at")).order_by().values("day", "sentiment_label")
                .annotate(n=Count("pk"))):
        per_day[row["day"]][row["sentiment_label"]] += row["n"]
        totals[row["sentiment_label"]] += row["n"]
    days = [(start + timedelta(days=i)) for i in range((end - start).days + 1)]
    distribution = [(day, per_day[day]) for day in days]
    resolved = conversations.filter(resolved_at__isnull=False)
    response = conversations.filter(escalated_at__isnull=False, first_agent_reply_at__isnull=False).aggregate(
        average=Avg(F("first_agent_reply_at") - F("escalated_at")))["average"]
    csat = conversations.aggregate(up=Count("pk", filter=Q(csat=1)), down=Count("pk", filter=Q(csat=-1)))
    rated = csat["up"] + csat["down"]
    total = conversations.count()
    bot_only = conversations.filter(escalated_at__isnull=True, assignee__isnull=True).count()
    bot_replies = Message.objects.filter(conversation__organization=organization, author=Author.BOT,
                                         created_at__range=(low, high))
    outcomes = Counter({row["outcome"]: row["n"] for row in bot_replies.exclude(knowledge={}).order_by()
                        .values(outcome=KT("knowledge__outcome")).annotate(n=Count("pk"))})
    return {
        "bot_only": bot_only,
        "bot_only_percent": round(100 * bot_only / total) if total else None,
        "did_not_know": outcomes.get(Outcome.DID_NOT_KNOW, 0),
        "not_sure": outcomes.get(Outcome.NOT_SURE, 0),
        "did_not_know_handoffs": conversations.filter(escalation_reason=BOT_DID_NOT_KNOW).count(),
        "answered_from_knowledge": sum(outcomes.get(name, 0)
                                       for name in (Outcome.QUOTED, Outcome.GROUNDED, Outcome.REPLACED)),
        "replaced": outcomes.get(Outcome.REPLACED, 0),
        "marked_wrong": bot_replies.filter(marked_wrong_at__isnull=False).count(),
        "conversations": total,
        "messages_scored": sum(totals.values()),
        "totals": dict(totals),
        "distribution": distribution,
        "escalations": conversations.filter(escalated_at__isnull=False).count(),
        "bot_resolved": resolved.filter(resolved_by_human=False).count(),
        "human_resolved": resolved.filter(resolved_by_human=True).count(),
        "first_response_seconds": response.total_seconds() if response is not None else None,
        "csat_up": csat["up"], "csat_down": csat["down"],
        "csat_percent": round(100 * csat["up"] / rated) if rated else None,
        "unknown_questions": unknown_questions(organization, low, high),
        "most_negative": list(conversations.filter(sentiment_score__isnull=False).select_related("visitor")
                              .order_by("sentiment_score")[:10]),
    }


def unknown_questions(organization: Organization, low, high) -> list[dict]:
    """The customer questions the bot answered "I don't know" or "not sure" to between low and high, or
    answered with a reply an agent marked wrong (`marked_wrong`), alike ones (case and spacing aside)
    together, most asked first: each with how often, when last, its latest conversation, and the knowledge
    base of the deployment that answered, to write its answer in."""
    asked = Message.objects.filter(conversation=OuterRef("conversation"), author=Author.CUSTOMER,
                                   seq__lt=OuterRef("seq")).order_by("-seq").values("text")[:1]
    replies = (Message.objects.filter(conversation__organization=organization, author=Author.BOT,
                                      created_at__range=(low, high))
               .filter(Q(knowledge__outcome=Outcome.DID_NOT_KNOW) | Q(knowledge__outcome=Outcome.NOT_SURE)
                       | Q(marked_wrong_at__isnull=False))
               .annotate(question=Subquery(asked), reply_outcome=KT("knowledge__outcome"))
               .select_related("conversation__deployment__knowledge__knowledge_base")
               .order_by("-created_at")[:UNKNOWN_REPLIES_READ])
    grouped: dict[str, dict] = {}
    for reply in replies:
        if not reply.question:
            continue
        key = answer_title(reply.question).lower()  # alike questions: case and spacing aside
        if key in grouped:
            grouped[key]["times"] += 1
            continue
        grouped[key] = {"question": " ".join(reply.question.split()), "key": key, "times": 1,
                        "last_at": reply.created_at, "outcome": reply.reply_outcome,
                        "marked_wrong": reply.marked_wrong_at is not None,
                        "conversation_id": reply.conversation_id,
                        "knowledge_base": knowledge_base_of(reply.conversation)}
    ranked = sorted(grouped.values(), key=lambda item: (-item["times"], -item["last_at"].timestamp()))[
        :UNKNOWN_QUESTIONS_SHOWN]
    # A question whose answer was written since (a source titled with it: sources.answer_title) says so
    # instead of asking again.
    titles = KnowledgeSource.objects.filter(
        knowledge_base__in={item["knowledge_base"] for item in ranked if item["knowledge_base"] is not None})
    written = {(knowledge_base_id, answer_title(title).lower())
               for knowledge_base_id, title in titles.values_list("knowledge_base_id", "title")}
    for item in ranked:
        knowledge_base = item["knowledge_base"]
        item["answer_written"] = knowledge_base is not None and (knowledge_base.pk, item["key"]) in written
    return ranked

