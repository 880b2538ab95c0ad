"""View decorators: who may open a page of the active organization."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

View = Callable[..., HttpResponse]


def organization_required(view: View) -> View:
    """Signed in and a member (admin or agent) of an active organization."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if getattr(request, "organization", None) is None:
            return redirect("accounts:new_organization")
        return view(request, *args, **kwargs)

    return wrapper


def organization_admin_required(view: View) -> View:
    """Signed in and an admin of the active organization."""

    @organization_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.membership.is_admin:  # type: ignore[attr-defined]
            raise PermissionDenied("Only organization admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper
