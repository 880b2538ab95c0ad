"""Being an organization admin is what grants Django admin access.

Nobody sets `is_staff` by hand: an org admin gets the model permissions of the store's own
apps, and every ModelAdmin (accounts/admin_scoping.py) narrows what they see to their orgs.
"""

from __future__ import annotations

from django.contrib.auth.backends import BaseBackend

from accounts.scoping import is_admin_of_any

SCOPED_APPS = {"accounts", "store", "finetune", "knowledge", "chat", "market", "upstreams"}


class OrganizationAdminBackend(BaseBackend):
    def has_perm(self, user_obj, perm: str, obj=None) -> bool:  # type: ignore[override]
        app_label = perm.split(".", 1)[0]
        return app_label in SCOPED_APPS and is_admin_of_any(user_obj)

    def has_module_perms(self, user_obj, app_label: str) -> bool:  # type: ignore[override]
        return app_label in SCOPED_APPS and is_admin_of_any(user_obj)
