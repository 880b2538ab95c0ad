"""API keys: shown once, stored as SHA-256 (plus a display prefix), revocable, optionally restricted."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization
from core.bounds import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE
from store.models import ApiKey, Deployment

KEY_PREFIX = "gpts"
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_key(plaintext: str) -> str:
    # Keys are 190 bits of randomness: a fast hash is right (no password stretching needed).
    return hashlib.sha256(plaintext.encode()).hexdigest()


@transaction.atomic
def create_api_key(organization: Organization, name: str, deployments: list[Deployment] | None = None, user=None,
                   requests_per_minute: int | None = None, tokens_per_minute: int | None = None
                   ) -> tuple[ApiKey, str]:
    """Returns the key and its plaintext, which is never stored and cannot be shown again.

    Limits outside core.bounds (0 would refuse every request) raise OutOfBounds, a ValueError.
    """
    limits = {name: bound.check(value) for name, bound, value in (
        ("requests_per_minute", REQUESTS_PER_MINUTE, requests_per_minute),
        ("tokens_per_minute", TOKENS_PER_MINUTE, tokens_per_minute)) if value is not None}
    for deployment in deployments or []:
        if deployment.organization_id != organization.pk:
            raise ValueError("a key can only be restricted to deployments of its own organization")
    prefix = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    key = ApiKey.objects.create(organization=organization, name=name.strip() or "API key",
                                prefix=f"{KEY_PREFIX}_{prefix}", key_hash=hash_key(plaintext), created_by=user,
                                **limits)
    if deployments:
        key.deployments.set(deployments)
    return key, plaintext


def authenticate(plaintext: str) -> ApiKey | None:
    if not plaintext or not plaintext.startswith(f"{KEY_PREFIX}_"):
        return None
    key = ApiKey.objects.select_related("organization").filter(key_hash=hash_key(plaintext), revoked_at=None).first()
    if key is not None:
        now = timezone.now()
        # Touch last_used_at at most once a minute: one write per request would serialise SQLite.
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def restricted_to(key: ApiKey) -> list[str]:
    """The slugs of the deployments a key is restricted to; empty when it may use every deployment and model."""
    return list(key.deployments.order_by("slug").values_list("slug", flat=True))


def revoke(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(revoked_at=timezone.now())
