"""An upstream's API key, encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with a key derived from SECRET_KEY by HKDF-SHA256
under a purpose label, so the database alone (a dump, a backup) never yields the key. Rotating SECRET_KEY
makes stored keys unreadable: `decrypt` then raises UnreadableSecret and the admin re-enters the key.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PURPOSE = b"gpt-store upstream api keys v1"
PREFIX_CHARS = 6


class UnreadableSecret(Exception):
    """The stored key was encrypted under another SECRET_KEY (or altered)."""


def _fernet() -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
        settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret("The upstream's API key cannot be decrypted (SECRET_KEY changed?); enter it again.") \
            from None


def display_prefix(secret: str) -> str:
    """What the pages show of a key once it is stored: its first characters only."""
    return secret[:PREFIX_CHARS] + "…" if secret else ""
