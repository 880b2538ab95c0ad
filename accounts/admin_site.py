from functools import wraps

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse

from accounts.scoping import is_admin_of_any


class OrganizationAdminSite(admin.AdminSite):
    site_header = "GPT Store administration"
    site_title = "GPT Store admin"
    index_title = "Your organizations"

    def has_permission(self, request: HttpRequest) -> bool:
        return is_admin_of_any(request.user)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs):
            # Signed in but not an admin of any organization (e.g. a support agent): say so plainly
            # instead of bouncing through a login page.
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied("Only organization admins can use the admin.")
            return inner(request, *args, **kwargs)

        return guarded

    def login(self, request: HttpRequest, extra_context=None):
        if request.user.is_authenticated:
            # Signed in but not an admin of any organization (e.g. a support agent).
            raise PermissionDenied("Only organization admins can use the admin.")
        # One login page for the whole site; the admin's own form insists on is_staff.
        return redirect_to_login(request.GET.get("next") or reverse("admin:index"), reverse("accounts:login"))
