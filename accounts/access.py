"""View decorators: who may open a page of the active organization (sync and async views)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

# Sync or async views (an async view returns a coroutine).
View = Callable[..., Any]


def _refusal(request: HttpRequest, admins_only: bool) -> HttpResponse | None:
    if getattr(request, "organization", None) is None:
        return redirect("accounts:new_organization")
    if admins_only and not request.membership.is_admin:  # type: ignore[attr-defined]
        raise PermissionDenied("Only organization admins can do this.")
    return None


def _guard(view: View, admins_only: bool) -> View:
    wrapper: View
    if iscoroutinefunction(view):
        async def async_wrapper(request: HttpRequest, *args, **kwargs):
            refusal = await sync_to_async(_refusal)(request, admins_only)
            return refusal if refusal is not None else await view(request, *args, **kwargs)

        wrapper = markcoroutinefunction(wraps(view)(async_wrapper))
    else:
        def sync_wrapper(request: HttpRequest, *args, **kwargs):
            refusal = _refusal(request, admins_only)
            return refusal if refusal is not None else view(request, *args, **kwargs)

        wrapper = wraps(view)(sync_wrapper)
    return login_required(wrapper)


def organization_required(view: View) -> View:
    """Signed in and a member (admin or agent) of an active organization."""
    return _guard(view, admins_only=False)


def organization_admin_required(view: View) -> View:
    """Signed in and an admin of the active organization."""
    return _guard(view, admins_only=True)
