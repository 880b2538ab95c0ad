"""The sentiment timeline of one conversation, as a server-rendered SVG."""

from __future__ import annotations

from chat.handoff import rolling
from chat.models import Author, Message
from core.charts import Series, line_chart


def sentiment_timeline(transcript: list[Message]) -> str:
    points, rolling_points, score = [], [], None
    for message in transcript:
        if message.author == Author.CUSTOMER and message.sentiment_value is not None:
            score = rolling(score, message.sentiment_value)
            points.append((message.seq, message.sentiment_value))
            rolling_points.append((message.seq, score))
    # Drawn at about the width of the console's side card, so its labels are not scaled down to ~6 px there.
    return line_chart([Series("message", points, "#8a8fa3", markers=True),
                       Series("rolling", rolling_points, "#4f46e5")], width=340, height=220,
                      y_range=(-1.05, 1.05), x_label="message #", title="Sentiment timeline")
