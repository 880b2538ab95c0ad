"""When the bot hands a conversation to a human, and what the customer is told."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chat.models import Conversation, ConversationStatus, Widget

# Exponential moving average weight of the newest message in the rolling sentiment score.
ROLLING_WEIGHT = 0.5

TOLD_HUMAN_IS_COMING = "I'm bringing in a member of our support team — someone will join this chat shortly."
TOLD_NOBODY_ONLINE = ("No one from our team is online right now. Leave your email address here and we will "
                      "reply as soon as we are back.")
# The escalation reason when the knowledge base did not cover the question (the insights page counts them).
BOT_DID_NOT_KNOW = "the bot did not know"
TOLD_BOT_UNAVAILABLE = ("Sorry — our assistant is unavailable right now. A member of our team will pick up "
                        "this conversation.")


def asks_for_human(text: str, phrases: Sequence[str]) -> bool:
    """Whole-word match of any handoff phrase, ignoring case (\"agent\" yes, \"agenda\" no)."""
    lowered = text.casefold()
    return any(re.search(rf"(?<!\w){re.escape(phrase.casefold())}(?!\w)", lowered) for phrase in phrases if phrase)


def sentiment_value(scores: dict[str, float]) -> float:
    """-1 (surely negative) .. +1 (surely positive), from any label set naming those two."""
    return float(scores.get("positive", 0.0)) - float(scores.get("negative", 0.0))


def rolling(previous: float | None, value: float) -> float:
    """A conversation starts neutral (0): one angry message moves it halfway, a second one further."""
    return (1 - ROLLING_WEIGHT) * (previous or 0.0) + ROLLING_WEIGHT * value


@dataclass(frozen=True)
class HandoffRules:
    """A widget's escalation rules, as read when a message arrived."""

    phrases: tuple[str, ...]
    negative_streak: int
    score_threshold: float

    @classmethod
    def of(cls, widget: Widget) -> HandoffRules:
        return cls(tuple(widget.phrases), widget.negative_streak, widget.score_threshold)


@dataclass(frozen=True)
class Decision:
    escalate: bool
    reason: str = ""


def decide(conversation: Conversation, rules: HandoffRules, text: str) -> Decision:
    """Apply the widget's rules after a customer message (its sentiment, if any, already recorded)."""
    if conversation.status != ConversationStatus.BOT:
        return Decision(False)
    if asks_for_human(text, rules.phrases):
        return Decision(True, "the customer asked for a human")
    if rules.negative_streak and conversation.negative_streak >= rules.negative_streak:
        return Decision(True, f"{conversation.negative_streak} negative messages in a row")
    if conversation.sentiment_score is not None and conversation.sentiment_score < rules.score_threshold:
        return Decision(True, f"sentiment fell to {conversation.sentiment_score:.2f}")
    return Decision(False)
