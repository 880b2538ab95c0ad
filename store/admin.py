from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from store.models import ApiKey, Deployment, DeploymentRevision, FoundationModel, TunedModel, UsageDaily


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


class DeploymentRevisionInline(admin.TabularInline):
    model = DeploymentRevision
    fields = ["number", "note", "tuned_model", "base_model", "created_by", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(Deployment)
class DeploymentAdmin(OrganizationScopedAdmin):
    list_display = ["name", "slug", "organization", "task", "tuned_model", "base_model", "status", "revision"]
    list_filter = ["status", "task", "organization"]
    search_fields = ["name", "slug"]
    readonly_fields = ["revision", "created_at", "updated_at"]
    inlines = [DeploymentRevisionInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "tuned_model" and not request.user.is_superuser:
            # Models another app lets these organizations serve (marketplace installs) are choices too.
            from store import deploy

            granted = {pk for org in self._organizations(request) for pk in deploy.granted_tuned_ids(org)}
            field.queryset = (field.queryset | TunedModel.objects.filter(pk__in=granted)).distinct()
        return field

    def save_model(self, request, obj, form, change):
        # Edits in the admin go through the same path as the pages: a new revision each time.
        from store import deploy

        choice = deploy.ModelChoice(tuned=obj.tuned_model, base=obj.base_model, upstream=obj.upstream_model)
        config = {field: getattr(obj, field) for field in deploy.CONFIG_FIELDS}
        saved = deploy.create_or_update(obj.organization, obj.slug, choice, request.user, **config)
        obj.pk, obj.revision = saved.pk, saved.revision


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdmin):
    list_display = ["name", "prefix", "organization", "requests_per_minute", "tokens_per_minute", "last_used_at",
                    "revoked_at"]
    list_filter = ["organization"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "last_used_at", "created_at", "created_by"]
    fields = ["organization", "name", "prefix", "deployments", "requests_per_minute", "tokens_per_minute",
              "revoked_at", "last_used_at", "created_by", "created_at"]

    def has_add_permission(self, request):
        return False  # keys are created where their secret can be shown once (API keys page, CLI)


@admin.register(UsageDaily)
class UsageDailyAdmin(OrganizationScopedAdmin):
    list_display = ["day", "organization", "source", "api_key", "model", "requests", "prompt_tokens",
                    "completion_tokens"]
    list_filter = ["day", "organization", "model"]
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DeploymentRevision)
class DeploymentRevisionAdmin(OrganizationScopedAdmin):
    list_display = ["deployment", "number", "note", "tuned_model", "base_model", "created_by", "created_at"]
    list_filter = ["deployment__organization"]
    search_fields = ["deployment__slug", "note"]

    def has_add_permission(self, request):
        return False  # revisions are written by every deployment change

    def has_change_permission(self, request, obj=None):
        return False
