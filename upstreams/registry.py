"""Registering, re-keying and removing an organization's hosted models (the pages and the admin call these)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import ProtectedError

from accounts.models import Organization
from upstreams.models import UpstreamModel
from upstreams.secrets import display_prefix, encrypt


def set_key(upstream: UpstreamModel, api_key: str) -> None:
    """Store the key encrypted; only its first characters stay readable."""
    upstream.api_key_encrypted = encrypt(api_key) if api_key else ""
    upstream.api_key_prefix = display_prefix(api_key)


def register(organization: Organization, name: str, base_url: str, model_name: str, api_key: str,
             user=None) -> UpstreamModel:
    upstream = UpstreamModel(organization=organization, name=name, base_url=base_url.rstrip("/"),
                             model_name=model_name, created_by=user)
    set_key(upstream, api_key)
    upstream.save()
    return upstream


def replace_key(upstream: UpstreamModel, api_key: str) -> UpstreamModel:
    set_key(upstream, api_key)
    upstream.save(update_fields=["api_key_encrypted", "api_key_prefix"])
    return upstream


def delete(upstream: UpstreamModel) -> None:
    """Refused while a deployment serves it (its revisions only forget it)."""
    try:
        upstream.delete()
    except ProtectedError:
        names = ", ".join(sorted(d.slug for d in upstream.deployments.all()))  # type: ignore[attr-defined]
        raise ValidationError(f"{upstream.name} is served by {names}: switch those deployments to another "
                              "model first.") from None
