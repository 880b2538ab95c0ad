from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from store.models import FoundationModel, TunedModel


@admin.register(FoundationModel)
class FoundationModelAdmin(admin.ModelAdmin):
    """The catalog is global: org admins may browse it; only operators (superusers) edit it."""

    list_display = ["display_name", "slug", "family", "parameter_count", "context_length", "supports_dialogue",
                    "supports_sentiment", "bundled"]
    list_filter = ["family", "supports_dialogue", "supports_sentiment", "bundled", "source_kind"]
    search_fields = ["display_name", "slug", "family", "architecture"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(TunedModel)
class TunedModelAdmin(OrganizationScopedAdmin):
    list_display = ["slug", "organization", "base", "task", "method", "version", "published", "size_bytes",
                    "created_at"]
    list_filter = ["task", "method", "published", "organization"]
    search_fields = ["slug", "name", "suffix", "short_id"]
    readonly_fields = ["short_id", "artifact_path", "labels", "hyperparameters", "data_stats", "metrics", "size_bytes",
                       "merged_status", "merged_error", "created_at"]

    def has_add_permission(self, request):
        return False  # tuned models come out of fine-tuning jobs
