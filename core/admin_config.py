from django.contrib.admin.apps import AdminConfig


class OrganizationAdminConfig(AdminConfig):
    """Django admin whose site lets organization admins in (see accounts/admin_site.py)."""

    default_site = "accounts.admin_site.OrganizationAdminSite"
