"""Knowledge bases: a business's own documents, split into passages and embedded for retrieval.

A source (an uploaded file, pasted text, an answer an agent saved) has versions. A new version is
parsed into passages when it is created and embedded by an inference worker; it goes live — replaces
the source's previous live version in one row update — only once every passage has its embedding.
The knowledge base's `revision` changes whenever its set of live passages (or a source's link, which
their citations carry) does, so workers know when the index and passages they hold are stale.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from store.models import Task, engine_key


class KnowledgeBase(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE,
                                     related_name="knowledge_bases")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    # The embedding model: a catalog encoder or one of the organization's tuned embedding models.
    embedding_base = models.ForeignKey("store.FoundationModel", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    embedding_tuned = models.ForeignKey("store.TunedModel", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    # Switching embedding models: every live passage is embedded by the pending model too, then the
    # knowledge base moves to it in one update.
    pending_base = models.ForeignKey("store.FoundationModel", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    pending_tuned = models.ForeignKey("store.TunedModel", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    revision = models.PositiveIntegerField(default=0, help_text="Changes whenever the live passages do")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="knowledge_slug_unique_in_org"),
            models.CheckConstraint(
                condition=(models.Q(embedding_base__isnull=False, embedding_tuned__isnull=True)
                           | models.Q(embedding_base__isnull=True, embedding_tuned__isnull=False)),
                name="knowledge_base_has_one_embedding_model",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def embedding_key(self) -> str:
        """The serving engine's key of the embedding model."""
        return engine_key(Task.EMBEDDING, tuned_id=self.embedding_tuned_id,
                          base_slug=self.embedding_base.slug if self.embedding_base_id else None)  # type: ignore[union-attr]

    @property
    def index_key(self) -> str:
        """What an inference worker holds the live passages' vectors under: a new revision or a new
        embedding model is a new key, so a worker never answers from a stale index."""
        return f"kb{self.pk}:r{self.revision}:{self.embedding_key}"

    @property
    def pending_key(self) -> str | None:
        if not (self.pending_base_id or self.pending_tuned_id):
            return None
        return engine_key(Task.EMBEDDING, tuned_id=self.pending_tuned_id,
                          base_slug=self.pending_base.slug if self.pending_base_id else None)  # type: ignore[union-attr]

    @property
    def model_keys(self) -> list[str]:
        """Every model a new passage must be embedded by: the live one and, while switching, the next."""
        return [key for key in (self.embedding_key, self.pending_key) if key]

    @property
    def embedding_label(self) -> str:
        return str(self.embedding_tuned or self.embedding_base)


class SourceKind(models.TextChoices):
    MARKDOWN = "markdown", "Markdown"
    TEXT = "text", "Plain text"
    HTML = "html", "HTML"
    PDF = "pdf", "PDF"
    QA_CSV = "qa_csv", "Q&A pairs (CSV)"
    QA_JSONL = "qa_jsonl", "Q&A pairs (JSONL)"
    PASTED = "pasted", "Pasted text"
    SAVED_ANSWER = "saved_answer", "Answer saved by an agent"


class KnowledgeSource(models.Model):
    organization_path = "knowledge_base__organization"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="sources")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    url = models.URLField(max_length=500, blank=True, help_text="Shown to customers as the link of a citation")
    live_version = models.OneToOneField("SourceVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="live_for")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "pk"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_qa(self) -> bool:
        return self.kind in (SourceKind.QA_CSV, SourceKind.QA_JSONL, SourceKind.SAVED_ANSWER)


class VersionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    EMBEDDING = "embedding", "Embedding"
    LIVE = "live", "Live"
    SUPERSEDED = "superseded", "Superseded"
    FAILED = "failed", "Failed"


class SourceVersion(models.Model):
    organization_path = "source__knowledge_base__organization"

    source = models.ForeignKey(KnowledgeSource, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.QUEUED)
    error = models.TextField(blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    text = models.TextField(help_text="The source's text as extracted (what an edit starts from)")
    passage_count = models.PositiveIntegerField(default=0)
    embedded_count = models.PositiveIntegerField(default=0)
    # Refreshed while a worker embeds this version: a version whose worker died stops beating and is
    # queued again; one that is merely large (minutes of embedding) is left to its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    live_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["source", "number"], name="one_source_version_number")]

    def __str__(self) -> str:
        return f"{self.source} v{self.number}"

    @property
    def is_pending(self) -> bool:
        return self.status in (VersionStatus.QUEUED, VersionStatus.EMBEDDING)


class Passage(models.Model):
    """One retrievable piece of a source version; its embedding is a float32 vector, little-endian."""

    organization_path = "version__source__knowledge_base__organization"

    version = models.ForeignKey(SourceVersion, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    title = models.CharField(max_length=400, help_text="Where it sits: 'Shipping › How much does shipping cost?'")
    question = models.TextField(blank=True, help_text="The question of a Q&A pair")
    text = models.TextField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [models.UniqueConstraint(fields=["version", "position"], name="one_passage_per_position")]

    def __str__(self) -> str:
        return self.title


class PassageVector(models.Model):
    """A passage's embedding by one model: float32, little-endian. Kept per model so that a knowledge
    base can switch embedding models atomically once every live passage has a vector by the new one."""

    organization_path = "passage__version__source__knowledge_base__organization"

    passage = models.ForeignKey(Passage, on_delete=models.CASCADE, related_name="vectors")
    model_key = models.CharField(max_length=120)
    part = models.PositiveSmallIntegerField(default=0, help_text="0: the whole passage; 1..: one of its sentences "
                                                                 "(knowledge.chunking.vector_texts)")
    vector = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["passage", "model_key", "part"],
                                               name="one_vector_per_passage_model_part")]

    def __str__(self) -> str:
        return f"{self.passage} by {self.model_key} ({self.part})"


class AnswerPolicy(models.TextChoices):
    GROUNDED = "grounded", "Grounded: the model phrases an answer from the passages, with citations"
    QUOTE = "quote", "Quote: the reply is the best passage itself (no generation)"
    OFF = "off", "Off: the model answers on its own"


class WhenUnsure(models.TextChoices):
    HANDOFF = "handoff", "Say so and offer a person (hands the conversation over)"
    CONTINUE = "continue", "Say so and carry on"


class DeploymentKnowledge(models.Model):
    """How a dialogue deployment answers from a knowledge base; part of the deployment's revisions."""

    organization_path = "deployment__organization"

    deployment = models.OneToOneField("store.Deployment", on_delete=models.CASCADE, related_name="knowledge")
    knowledge_base = models.ForeignKey(KnowledgeBase, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="deployments")
    policy = models.CharField(max_length=10, choices=AnswerPolicy.choices, default=AnswerPolicy.QUOTE)
    threshold = models.FloatField(help_text="Confidence (0..1) below which the bot does not answer")
    when_unsure = models.CharField(max_length=10, choices=WhenUnsure.choices, default=WhenUnsure.HANDOFF)

    class Meta:
        verbose_name = verbose_name_plural = "deployment knowledge settings"

    def __str__(self) -> str:
        return f"{self.deployment} ← {self.knowledge_base or 'no knowledge'} ({self.policy})"

    @property
    def active(self) -> bool:
        return self.knowledge_base_id is not None and self.policy != AnswerPolicy.OFF


class WrongAnswer(models.Model):
    """Entries an agent marked wrong as the answer to a customer's question: the bot no longer answers
    that question, or one worded nearly the same, with them (knowledge/feedback.py, knowledge/worker.py)."""

    organization_path = "knowledge_base__organization"

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="wrong_answers")
    question = models.TextField(help_text="As it was looked up (a follow-up with the question before it)")
    # [[source id, passage title], ...]: an entry keeps its source and title across the source's versions.
    entries = models.JSONField(default=list)
    marked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question[:80]
