from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.models import Invitation, Membership, Organization


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]

    def has_add_permission(self, request):
        # New organizations come from sign-up; only operators create them here.
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]


@admin.register(Invitation)
class InvitationAdmin(OrganizationScopedAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email"]
    readonly_fields = ["token", "invited_by", "accepted_at", "accepted_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.invited_by = request.user
        super().save_model(request, obj, form, change)
