"""The marketplace in Django admin, scoped like the rest: a publisher sees its listings and versions, an
installer its installations and reviews; only operators (superusers) hide a listing."""

from __future__ import annotations

from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from market import listings
from market.models import Installation, Listing, ListingVersion, Review


class ListingVersionInline(admin.TabularInline):
    model = ListingVersion
    fields = ["number", "tuned_model", "changelog", "created_at"]
    readonly_fields = ["number", "tuned_model", "created_at"]
    extra = 0
    can_delete = False
    max_num = 0  # versions are added from the listing's page (checked task, base and owner)


@admin.register(Listing)
class ListingAdmin(OrganizationScopedAdmin):
    list_display = ["title", "slug", "organization", "task", "base", "published", "hidden", "install_count",
                    "rating_average", "rating_count", "created_at"]
    list_filter = ["task", "published", "hidden", "organization"]
    search_fields = ["title", "slug", "summary", "languages"]
    inlines = [ListingVersionInline]
    actions = ["hide_listings", "unhide_listings"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["organization", "slug", "task", "base", "install_count", "rating_average", "rating_count",
                 "created_by", "created_at", "updated_at"]
        # Moderation belongs to operators: a publisher cannot unhide its own listing.
        return fixed if request.user.is_superuser else [*fixed, "hidden", "hidden_reason"]

    def has_add_permission(self, request):
        return False  # listings are published from a tuned model (market:publish), with their first version

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("hide_listings", None)
            actions.pop("unhide_listings", None)
        return actions

    @admin.action(description="Hide the selected listings (abuse)")
    def hide_listings(self, request, queryset):
        for listing in queryset:
            listings.set_hidden(listing, True, "hidden by an operator")

    @admin.action(description="Show the selected listings again")
    def unhide_listings(self, request, queryset):
        for listing in queryset:
            listings.set_hidden(listing, False)


@admin.register(ListingVersion)
class ListingVersionAdmin(OrganizationScopedAdmin):
    list_display = ["listing", "number", "tuned_model", "created_at"]
    list_filter = ["listing__organization"]
    search_fields = ["listing__title", "changelog"]
    readonly_fields = ["listing", "number", "tuned_model", "metrics", "created_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Installation)
class InstallationAdmin(OrganizationScopedAdmin):
    """The installer's; the publisher never sees who installed (only counts, on its listing's page)."""

    list_display = ["listing", "organization", "version", "installed_by", "installed_at"]
    list_filter = ["organization"]
    readonly_fields = ["organization", "listing", "version", "installed_by", "installed_at"]

    def has_add_permission(self, request):
        return False  # through market:install (public listings only)

    def has_change_permission(self, request, obj=None):
        return False  # version moves are upgrades (deployment revisions), from the installation's page


@admin.register(Review)
class ReviewAdmin(OrganizationScopedAdmin):
    list_display = ["listing", "organization", "rating", "author", "updated_at"]
    list_filter = ["rating", "organization"]
    search_fields = ["listing__title", "text"]
    readonly_fields = ["listing", "organization", "rating", "text", "author", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False  # reviews need an install and its use first (market:review)

    def has_change_permission(self, request, obj=None):
        return False
