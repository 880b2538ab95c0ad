from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin, OrganizationScopedInline
from finetune.models import Dataset, FineTuneJob, JobCheckpoint, JobEvent


@admin.register(Dataset)
class DatasetAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "task", "row_count", "file_format", "created_at"]
    list_filter = ["task", "file_format", "organization"]
    search_fields = ["name", "original_filename", "public_id"]
    readonly_fields = ["public_id", "file", "original_filename", "size_bytes", "sha256", "row_count", "stats",
                       "preview", "labels", "splits", "token_stats", "created_at"]


class JobEventInline(OrganizationScopedInline):
    model = JobEvent
    fields = ["created_at", "level", "type", "message"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    max_num = 0
    ordering = ["-created_at"]


@admin.register(FineTuneJob)
class FineTuneJobAdmin(OrganizationScopedAdmin):
    list_display = ["public_id", "suffix", "organization", "base_model", "task", "method", "status", "current_step",
                    "total_steps", "created_at"]
    list_filter = ["status", "task", "method", "organization"]
    search_fields = ["public_id", "suffix", "dataset__name"]
    readonly_fields = ["public_id", "status", "worker", "attempts", "heartbeat_at", "started_at", "finished_at",
                       "current_step", "total_steps", "epoch", "train_loss", "validation_loss", "tokens_per_second",
                       "elapsed_seconds", "eta_seconds", "trained_tokens", "metrics", "tuned_model", "error_message"]
    inlines = [JobEventInline]


@admin.register(JobCheckpoint)
class JobCheckpointAdmin(OrganizationScopedAdmin):
    list_display = ["job", "step", "created_at"]
    readonly_fields = ["job", "step", "path", "metrics", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(JobEvent)
class JobEventAdmin(OrganizationScopedAdmin):
    list_display = ["job", "created_at", "level", "type", "message"]
    list_filter = ["level", "type"]
    search_fields = ["message", "job__public_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
