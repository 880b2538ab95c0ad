"""The sentiment review dashboard: how conversations went over a period."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

from django.db.models import Avg, Count, F, Q

from accounts.models import Organization
from chat.models import Author, Conversation, Message
from chat.records import day_bounds


def insights(organization: Organization, start: date, end: date) -> dict:
    low, high = day_bounds(start, end)
    conversations = Conversation.objects.filter(organization=organization, created_at__range=(low, high))
    scored = Message.objects.filter(conversation__organization=organization, author=Author.CUSTOMER,
                                    created_at__range=(low, high)).exclude(sentiment_label="")
    per_day: dict[date, Counter] = defaultdict(Counter)
    for day, label in scored.values_list("created_at__date", "sentiment_label"):
        per_day[day][label] += 1
    days = [(start + timedelta(days=i)) for i in range((end - start).days + 1)]
    distribution = [(day, per_day[day]) for day in days]
    totals = Counter(scored.values_list("sentiment_label", flat=True))
    resolved = conversations.filter(resolved_at__isnull=False)
    response = conversations.filter(escalated_at__isnull=False, first_agent_reply_at__isnull=False).aggregate(
        average=Avg(F("first_agent_reply_at") - F("escalated_at")))["average"]
    csat = conversations.aggregate(up=Count("pk", filter=Q(csat=1)), down=Count("pk", filter=Q(csat=-1)))
    rated = csat["up"] + csat["down"]
    return {
        "conversations": conversations.count(),
        "messages_scored": sum(totals.values()),
        "totals": dict(totals),
        "distribution": distribution,
        "escalations": conversations.filter(escalated_at__isnull=False).count(),
        "bot_resolved": resolved.filter(resolved_by_human=False).count(),
        "human_resolved": resolved.filter(resolved_by_human=True).count(),
        "first_response_seconds": response.total_seconds() if response is not None else None,
        "csat_up": csat["up"], "csat_down": csat["down"],
        "csat_percent": round(100 * csat["up"] / rated) if rated else None,
        "most_negative": list(conversations.filter(sentiment_score__isnull=False).select_related("visitor")
                              .order_by("sentiment_score")[:10]),
    }
