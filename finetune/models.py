"""Datasets and fine-tuning jobs."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from store.models import FoundationModel, Method, Task, TunedModel


def _openai_suffix() -> str:
    return secrets.token_hex(12)


def dataset_upload_path(instance: Dataset, filename: str) -> str:
    extension = instance.file_format or "dat"
    return f"datasets/{instance.organization_id}/{instance.public_id}.{extension}"


class Dataset(models.Model):
    """A validated training file. Invalid files are never stored (finetune/validation.py)."""

    organization_path = "organization"

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        CSV = "csv", "CSV"

    class TokenStatsStatus(models.TextChoices):
        NONE = "", "not requested"
        PENDING = "pending", "computing"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="datasets")
    public_id = models.CharField(max_length=40, unique=True, default=_openai_suffix, editable=False)
    name = models.CharField(max_length=120)
    task = models.CharField(max_length=20, choices=Task.choices)
    file_format = models.CharField(max_length=8, choices=Format.choices)
    file = models.FileField(upload_to=dataset_upload_path, max_length=300)
    original_filename = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    row_count = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)
    preview = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=list, blank=True)
    # Reproducible split: row indices per part, from (seed, ratios); near-duplicates kept together.
    split_seed = models.PositiveIntegerField(default=42)
    split_ratios = models.JSONField(default=list, blank=True)
    splits = models.JSONField(default=dict, blank=True)
    token_stats_base = models.ForeignKey(FoundationModel, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    token_stats_status = models.CharField(max_length=10, choices=TokenStatsStatus.choices, blank=True, default="")
    token_stats = models.JSONField(default=dict, blank=True)
    purpose = models.CharField(max_length=20, default="fine-tune")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def openai_id(self) -> str:
        return f"file-{self.public_id}"


class JobStatus(models.TextChoices):
    """OpenAI's fine-tuning job statuses."""

    VALIDATING_FILES = "validating_files", "Validating files"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING)


class FineTuneJob(models.Model):
    organization_path = "organization"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="finetune_jobs")
    public_id = models.CharField(max_length=40, unique=True, default=_openai_suffix, editable=False)
    base_model = models.ForeignKey(FoundationModel, on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    validation_dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT,
                                           related_name="validation_jobs")
    task = models.CharField(max_length=20, choices=Task.choices)
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.LORA)
    hyperparameters = models.JSONField(default=dict)
    suffix = models.SlugField(max_length=40)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.VALIDATING_FILES)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    # Live progress (the job page and the API read these; events keep the history).
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0)
    train_loss = models.FloatField(null=True, blank=True)
    validation_loss = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    trained_tokens = models.BigIntegerField(default=0)
    error_message = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    tuned_model = models.OneToOneField(TunedModel, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="job")
    # Continued training: the tuned model whose weights this job starts from (base_model is its foundation).
    # Its ft: id is kept too, so the job still says what it continued after that model is deleted.
    parent_model = models.ForeignKey(TunedModel, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="continued_by")
    parent_model_name = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        verbose_name = "fine-tuning job"

    def __str__(self) -> str:
        return f"{self.openai_id} ({self.status})"

    @property
    def openai_id(self) -> str:
        return f"ftjob-{self.public_id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def progress_percent(self) -> float:
        return round(100 * self.current_step / self.total_steps, 1) if self.total_steps else 0.0

    @property
    def group_name(self) -> str:
        return f"finetune-job-{self.pk}"


class JobEvent(models.Model):
    """OpenAI-style job event: {created_at, level, message, type: message|metrics, data}."""

    organization_path = "job__organization"

    class Level(models.TextChoices):
        INFO = "info", "info"
        WARNING = "warn", "warning"
        ERROR = "error", "error"

    class Type(models.TextChoices):
        MESSAGE = "message", "message"
        METRICS = "metrics", "metrics"

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.MESSAGE)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"

    @property
    def openai_id(self) -> str:
        return f"ftevent-{self.pk}"


class JobCheckpoint(models.Model):
    organization_path = "job__organization"

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=400)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="one_checkpoint_per_step")]

    def __str__(self) -> str:
        return f"step {self.step} of {self.job}"

    @property
    def openai_id(self) -> str:
        return f"ftckpt-{self.pk}"
