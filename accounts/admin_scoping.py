"""The ModelAdmin base every org-owned model uses.

An org admin sees, opens, saves and picks (in foreign-key choices) only objects of the
organizations they administer; superusers see everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest

from accounts.models import Organization
from accounts.scoping import administered_organizations, is_organization_owned, scope_to


class ScopedRelatedFieldListFilter(admin.RelatedOnlyFieldListFilter):
    """Offers only the related objects of rows this admin may see (get_queryset is scoped), never every
    organization or object in the database."""


class ScopedAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Values of a field reached through a relation, taken from the visible rows (Django's own filter
    reads them from every row of the related model)."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (model_admin.get_queryset(request).distinct().order_by(field_path)
                               .values_list(field_path, flat=True))


def scoped_list_filter(model: type[models.Model], entry):
    """The list_filter entry, with a filter whose choices come from the rows the admin may see."""
    field_path, filter_class = (entry, None) if isinstance(entry, str) else (
        entry if isinstance(entry, (tuple, list)) else (None, None))
    if field_path is None:
        return entry  # a SimpleListFilter: its lookups are its own
    fields = get_fields_from_path(model, field_path)
    if fields[-1].is_relation and (filter_class is None or issubclass(filter_class, admin.RelatedFieldListFilter)):
        return (field_path, ScopedRelatedFieldListFilter)
    if len(fields) > 1 and filter_class in (None, admin.AllValuesFieldListFilter) and not fields[-1].choices:
        return (field_path, ScopedAllValuesFieldListFilter)
    return entry


# A link typed without its scheme ("help.acme.example/returns") is https, in every admin form and inline
# (Django 6 makes that the default; until then each form must say it).
URL_FIELDS_ASSUME_HTTPS: Mapping[type[models.Field[Any, Any]], Mapping[str, Any]] = {
    models.URLField: {"assume_scheme": "https"}}


class OrganizationScopedAdmin(admin.ModelAdmin):
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS

    def _organizations(self, request: HttpRequest):
        cache_name = "_administered_organizations"
        if not hasattr(request, cache_name):
            setattr(request, cache_name, list(administered_organizations(request.user)))
        return getattr(request, cache_name)

    def get_list_filter(self, request: HttpRequest):
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [scoped_list_filter(self.model, entry) for entry in filters]

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return scope_to(queryset, self._organizations(request))

    def _in_scope(self, request: HttpRequest, obj: models.Model | None) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        return scope_to(type(obj)._default_manager.filter(pk=obj.pk), self._organizations(request)).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._in_scope(request, obj)

    def _limit(self, request: HttpRequest, related_model: type[models.Model], queryset):
        if request.user.is_superuser or not is_organization_owned(related_model):
            return queryset
        base = queryset if queryset is not None else related_model._default_manager.all()
        return scope_to(base, self._organizations(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if related is Organization or is_organization_owned(related):
            kwargs["queryset"] = self._limit(request, related, kwargs.get("queryset"))
        elif related is get_user_model() and not request.user.is_superuser:
            # People are shared between organizations: offer only those in yours.
            kwargs["queryset"] = related.objects.filter(
                memberships__organization__in=self._organizations(request)
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if is_organization_owned(related):
            kwargs["queryset"] = self._limit(request, related, kwargs.get("queryset"))
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class OrganizationScopedInline(admin.TabularInline):
    extra = 0
    formfield_overrides = URL_FIELDS_ASSUME_HTTPS

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if not request.user.is_superuser and is_organization_owned(related):
            base = kwargs.get("queryset") or related._default_manager.all()
            kwargs["queryset"] = scope_to(base, administered_organizations(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
