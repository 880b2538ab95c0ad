"""Widgets: create and configure, the embed snippet, allowed origins, the default sentiment model."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from accounts.models import Organization
from chat.models import Widget
from store.models import Deployment, DeploymentStatus, Task


def normalize_origin(value: str) -> str:
    """`https://Shop.example/path` -> `https://shop.example` (scheme, host and port only)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"allowed_origins": f"{value!r} is not an origin like https://shop.example"})
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def default_sentiment_deployment(organization_id: int) -> Deployment | None:
    """The organization's sentiment deployment used when a widget names none: its oldest active one."""
    return (Deployment.objects.filter(organization_id=organization_id, task=Task.SENTIMENT,
                                      status=DeploymentStatus.ACTIVE).order_by("created_at", "pk").first())


def sentiment_deployment_for(widget: Widget) -> Deployment | None:
    """No query when the widget's own sentiment deployment was loaded with it and is active."""
    if widget.sentiment_deployment_id and widget.sentiment_deployment.status == DeploymentStatus.ACTIVE:  # type: ignore[union-attr]
        return widget.sentiment_deployment
    return default_sentiment_deployment(widget.organization_id)


def check_deployments(organization: Organization, deployment: Deployment,
                      sentiment_deployment: Deployment | None) -> None:
    errors = {}
    if deployment.organization_id != organization.pk or deployment.task != Task.DIALOGUE:
        errors["deployment"] = "The widget needs a dialogue deployment of your organization."
    if sentiment_deployment is not None and (sentiment_deployment.organization_id != organization.pk
                                             or sentiment_deployment.task != Task.SENTIMENT):
        errors["sentiment_deployment"] = "Pick a sentiment deployment of your organization."
    if errors:
        raise ValidationError(errors)


def create_widget(organization: Organization, deployment: Deployment, sentiment_deployment: Deployment | None = None,
                  allowed_origins: list[str] | None = None, **config) -> Widget:
    check_deployments(organization, deployment, sentiment_deployment)
    origins = sorted({normalize_origin(origin) for origin in allowed_origins or []})
    return Widget.objects.create(organization=organization, deployment=deployment,
                                 sentiment_deployment=sentiment_deployment, allowed_origins=origins, **config)


def embed_snippet(widget: Widget, site_url: str) -> str:
    return (f'<script src="{site_url.rstrip("/")}/static/chat/widget.js" '
            f'data-widget="{widget.public_key}" async></script>')


def frame_ancestors(widget: Widget) -> str:
    """The CSP that lets only the configured sites embed the widget's iframe."""
    origins = " ".join(widget.allowed_origins)
    return f"frame-ancestors {origins}" if origins else "frame-ancestors 'none'"
