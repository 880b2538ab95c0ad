"""Organization scoping, written once.

Every org-owned model declares `organization_path` (the ORM lookup from it to its
Organization). Pages, the API, WebSockets and the admin all scope through these helpers, so
an isolation rule is never re-derived inline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.db import models
from django.http import Http404

from accounts.models import Membership, Organization, Role

M = TypeVar("M", bound=models.Model)


def organization_lookup(model: type[models.Model]) -> str:
    path = getattr(model, "organization_path", None)
    if path is None:
        raise TypeError(f"{model.__name__} is not organization-owned (no organization_path)")
    return path


def is_organization_owned(model: type[models.Model]) -> bool:
    return getattr(model, "organization_path", None) is not None


def scope_to(queryset: models.QuerySet[M], organizations: Iterable[Organization] | Organization) -> models.QuerySet[M]:
    path = organization_lookup(queryset.model)
    if isinstance(organizations, Organization):
        return queryset.filter(**{path: organizations.pk} if path == "pk" else {path: organizations})
    ids = [org.pk for org in organizations]
    return queryset.filter(**{f"{path}__in" if path != "pk" else "pk__in": ids})


def get_for_organization(model_or_qs: type[M] | models.QuerySet[M], organization: Organization | None, **lookup) -> M:
    """Fetch one object of `organization`, or 404 — foreign objects look exactly like missing ones."""
    if organization is None:
        raise Http404("No active organization")
    queryset = model_or_qs if isinstance(model_or_qs, models.QuerySet) else model_or_qs._default_manager.all()
    try:
        return scope_to(queryset, organization).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError):  # type: ignore[attr-defined]
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None


def administered_organizations(user) -> models.QuerySet[Organization]:
    if not user.is_authenticated:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user, memberships__role=Role.ADMIN)


def is_admin_of_any(user) -> bool:
    return bool(user.is_authenticated and user.is_active and (
        user.is_superuser or Membership.objects.filter(user=user, role=Role.ADMIN).exists()
    ))


def membership_of(user, organization: Organization) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, organization=organization).first()
