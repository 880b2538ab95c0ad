"""Who is on the other end of a widget: short-lived signed socket tokens, visitors, HMAC identity."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import Visitor, Widget

logger = logging.getLogger(__name__)

SOCKET_TOKEN_SALT = "chat.widget.socket"  # noqa: S105 - a signing namespace, not a secret
SOCKET_TOKEN_MAX_AGE = 15 * 60  # long enough to connect and reconnect; the iframe refreshes it


class IdentityRefused(Exception):
    pass


def identity_hash(widget: Widget, external_id: str) -> str:
    """What the business's server computes: HMAC-SHA256(widget secret, customer id), hex."""
    return hmac.new(widget.identity_secret.encode(), external_id.encode(), hashlib.sha256).hexdigest()


def sign_socket_token(widget: Widget, visitor: Visitor) -> str:
    return signing.dumps({"w": widget.public_key, "v": visitor.pk}, salt=SOCKET_TOKEN_SALT, compress=True)


@dataclass(frozen=True)
class SocketClaims:
    widget_key: str
    visitor_id: int


def read_socket_token(token: str, max_age: int | None = None) -> SocketClaims | None:
    """None for a forged, altered or expired token."""
    try:
        data = signing.loads(token, salt=SOCKET_TOKEN_SALT,
                             max_age=SOCKET_TOKEN_MAX_AGE if max_age is None else max_age)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(data, dict) or "w" not in data or "v" not in data:
        return None
    return SocketClaims(str(data["w"]), int(data["v"]))


def open_visitor(widget: Widget, visitor_token: str = "", identity: dict | None = None) -> Visitor:
    """Resume the visitor behind `visitor_token` (or create one); with an identity, verify its hash
    and attach the conversation to the business's own customer id."""
    identity = identity or {}
    external_id = str(identity.get("id") or "").strip()[:200]
    if external_id:
        expected = identity_hash(widget, external_id)
        if not hmac.compare_digest(expected, str(identity.get("hash") or "")):
            logger.warning("widget %s: refused identity %r with a wrong hash", widget.public_key, external_id)
            raise IdentityRefused("The identity hash does not match: the customer could not be verified.")
    elif widget.require_identity:
        raise IdentityRefused("This chat is only available to signed-in customers.")

    visitor = None
    if external_id:
        visitor = Visitor.objects.filter(widget=widget, external_id=external_id).first()
    if visitor is None and visitor_token:
        visitor = Visitor.objects.filter(widget=widget, token=visitor_token).first()
        if visitor is not None and visitor.external_id and visitor.external_id != external_id:
            # That token belongs to a verified customer: only their verified identity opens their
            # history (another customer, or nobody signed in, on a shared computer gets a fresh chat).
            visitor = None
    if visitor is None:
        try:
            with transaction.atomic():
                visitor = Visitor.objects.create(widget=widget, external_id=external_id)
        except IntegrityError:
            visitor = Visitor.objects.get(widget=widget, external_id=external_id)
    updates: dict = {"last_seen_at": timezone.now()}
    if external_id:
        updates.update(external_id=external_id,
                       name=str(identity.get("name") or visitor.name)[:120],
                       email=str(identity.get("email") or visitor.email)[:254])
    for field, value in updates.items():
        setattr(visitor, field, value)
    visitor.save(update_fields=list(updates))
    return visitor
