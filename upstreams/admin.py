from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from upstreams.models import UpstreamModel


@admin.register(UpstreamModel)
class UpstreamModelAdmin(OrganizationScopedAdmin):
    """The key is never shown (only its prefix); it is typed once on the Hosted models page, and Django's delete
    page refuses while a deployment serves the upstream (PROTECT)."""

    list_display = ["name", "organization", "model_name", "base_url", "api_key_prefix", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "model_name", "base_url"]
    fields = ["organization", "name", "base_url", "model_name", "api_key_prefix", "created_by", "created_at"]
    readonly_fields = ["api_key_prefix", "created_by", "created_at"]

    def has_add_permission(self, request):
        return False  # registered where the key can be typed once (the Hosted models page)
