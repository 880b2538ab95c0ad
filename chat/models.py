"""Widgets, visitors, conversations and messages. The database is the source of truth; the channel
layer only announces what changed."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

DEFAULT_HANDOFF_PHRASES = ["agent", "human", "person", "representative", "real person", "someone real",
                           "talk to someone", "speak to someone", "operator", "manager"]


def _public_key() -> str:
    return f"wk_{secrets.token_urlsafe(16)}"


def _secret() -> str:
    return secrets.token_urlsafe(32)


def _visitor_token() -> str:
    return secrets.token_urlsafe(24)


class Widget(models.Model):
    organization_path = "organization"

    class Position(models.TextChoices):
        RIGHT = "right", "Bottom right"
        LEFT = "left", "Bottom left"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="widgets")
    deployment = models.ForeignKey("store.Deployment", on_delete=models.PROTECT, related_name="widgets",
                                   help_text="The dialogue model that answers customers.")
    sentiment_deployment = models.ForeignKey(
        "store.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="sentiment_widgets",
        help_text="Scores every customer message (default: the organization's default sentiment deployment).")
    public_key = models.CharField(max_length=40, unique=True, default=_public_key, editable=False)
    title = models.CharField(max_length=80, default="Chat with us")
    greeting = models.CharField(max_length=300, default="Hi! How can we help you today?")
    color = models.CharField(max_length=7, default="#4f46e5")
    position = models.CharField(max_length=5, choices=Position.choices, default=Position.RIGHT)
    allowed_origins = models.JSONField(default=list, blank=True,
                                       help_text="Sites that may embed the widget, e.g. https://shop.example")
    identity_secret = models.CharField(max_length=64, default=_secret,
                                       help_text="HMAC-SHA256 secret for identity verification")
    require_identity = models.BooleanField(default=False, help_text="Refuse visitors without a verified identity")
    # Escalation rules
    handoff_phrases = models.JSONField(default=list, blank=True)
    negative_streak = models.PositiveSmallIntegerField(default=2, help_text="Consecutive negative messages "
                                                                            "that bring in a human (0 = never)")
    score_threshold = models.FloatField(default=-0.5, help_text="Rolling sentiment (-1..1) below which a "
                                                                 "human takes over")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.title} ({self.deployment.slug})"

    @property
    def phrases(self) -> list[str]:
        return self.handoff_phrases or DEFAULT_HANDOFF_PHRASES


class Visitor(models.Model):
    """An end customer of a business: anonymous (a random token kept in the widget's storage) or
    identified by the business (external id verified with HMAC)."""

    organization_path = "widget__organization"

    widget = models.ForeignKey(Widget, on_delete=models.CASCADE, related_name="visitors")
    token = models.CharField(max_length=64, unique=True, default=_visitor_token)
    external_id = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=120, blank=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["widget", "external_id"], condition=~models.Q(external_id=""),
                                               name="one_visitor_per_external_id")]

    def __str__(self) -> str:
        return self.name or self.email or f"visitor {self.pk}"


class ConversationStatus(models.TextChoices):
    BOT = "bot", "With the bot"
    NEEDS_HUMAN = "needs_human", "Needs a human"
    ASSIGNED = "assigned", "With an agent"
    RESOLVED = "resolved", "Resolved"


class Conversation(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="conversations")
    widget = models.ForeignKey(Widget, on_delete=models.CASCADE, related_name="conversations")
    deployment = models.ForeignKey("store.Deployment", null=True, on_delete=models.SET_NULL, related_name="+")
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE, related_name="conversations")
    status = models.CharField(max_length=12, choices=ConversationStatus.choices, default=ConversationStatus.BOT)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_conversations")
    last_seq = models.PositiveIntegerField(default=0)
    # The customer's own numbering: messages they see (not private notes), gapless (docs/chat-protocol.md).
    last_public_seq = models.PositiveIntegerField(default=0)
    # Whose turn it is to handle this conversation's customer messages (chat/turns.py): a web process or
    # the sweeper, claimed with a conditional UPDATE and renewed while held; a stale claim is taken over.
    turn_owner = models.CharField(max_length=80, blank=True)
    turn_claimed_at = models.DateTimeField(null=True, blank=True)
    # Sentiment summary: an exponential moving average of (P(positive) - P(negative)) per customer message.
    sentiment_score = models.FloatField(null=True, blank=True)
    sentiment_trend = models.FloatField(default=0)
    negative_streak = models.PositiveSmallIntegerField(default=0)
    unread_for_agents = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(default=timezone.now)
    last_message_preview = models.CharField(max_length=160, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_reason = models.CharField(max_length=200, blank=True)
    first_agent_reply_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_human = models.BooleanField(null=True)
    csat = models.SmallIntegerField(null=True, blank=True, help_text="1 thumbs up, -1 thumbs down")
    contact_email = models.EmailField(blank=True, help_text="Left by the customer when no agent was online")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_message_at"]
        indexes = [models.Index(fields=["organization", "status", "last_message_at"]),
                   models.Index(fields=["organization", "sentiment_score"])]

    def __str__(self) -> str:
        return f"conversation {self.pk} with {self.visitor}"

    @property
    def console_group(self) -> str:
        return f"chat-conversation-{self.pk}"


class Author(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    BOT = "bot", "Bot"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Message(models.Model):
    organization_path = "conversation__organization"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    public_seq = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="The number the customer sees (none for private notes)")
    author = models.CharField(max_length=10, choices=Author.choices)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    text = models.TextField()
    internal = models.BooleanField(default=False, help_text="A private note: never sent to the customer")
    client_id = models.CharField(max_length=64, blank=True,
                                 help_text="The sender's id for the message, so a resend is not stored twice")
    created_at = models.DateTimeField(default=timezone.now)
    sentiment_label = models.CharField(max_length=40, blank=True)
    sentiment_score = models.FloatField(null=True, blank=True, help_text="probability of the label")
    sentiment_value = models.FloatField(null=True, blank=True, help_text="P(positive) - P(negative), -1..1")
    # A bot reply from knowledge: how it was made, its confidence and the passages it used (their text
    # as they were, so the console shows what the bot saw even after the knowledge base changed).
    knowledge = models.JSONField(default=dict, blank=True)
    marked_wrong_at = models.DateTimeField(null=True, blank=True)
    marked_wrong_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    # A customer message is handled once scored, checked against the handoff rules and answered (or
    # handed over): until then the sweeper (chat/sweeper.py) looks for it.
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="one_message_per_seq"),
            models.UniqueConstraint(fields=["conversation", "public_seq"], name="one_message_per_public_seq"),
            models.UniqueConstraint(fields=["conversation", "client_id"], condition=~models.Q(client_id=""),
                                    name="one_message_per_client_id"),
        ]
        indexes = [models.Index(fields=["created_at"], condition=models.Q(author="customer", handled_at=None),
                                name="unhandled_customer_messages")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.author}: {self.text[:40]}"


class CannedReply(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="canned_replies")
    title = models.CharField(max_length=80)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "canned replies"

    def __str__(self) -> str:
        return self.title
