from django.contrib import admin

from store.models import FoundationModel


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
