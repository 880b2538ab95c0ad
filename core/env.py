"""Small typed readers for environment variables.

Every setting goes through one of these so a bad value fails loudly at start-up
with the variable's name, instead of deep inside a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "", env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(name, default)


def envbool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if name not in env:
        return default
    value = env[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {env[name]!r}")


def envint(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    if name not in env or env[name].strip() == "":
        return default
    try:
        return int(env[name].replace("_", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {env[name]!r}") from None


def envfloat(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    if name not in env or env[name].strip() == "":
        return default
    try:
        return float(env[name])
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {env[name]!r}") from None


_SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
               "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def envbytes(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A size in bytes: `52428800`, `50MB`, `1.5GiB`."""
    env = os.environ if env is None else env
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([A-Za-z]*)", raw)
    if match is None:
        raise ImproperlyConfigured(f"{name} must be a size like 50MB, got {raw!r}")
    number, unit = match.group(1), match.group(2).upper()
    if unit not in _SIZE_UNITS:
        raise ImproperlyConfigured(f"{name}: unknown size unit in {raw!r} (use B, KB, MB, GB, KiB, MiB, GiB)")
    return int(float(number) * _SIZE_UNITS[unit])


def envlist(name: str, default: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    if name not in env:
        return list(default)
    return [item.strip() for item in env[name].split(",") if item.strip()]


def parse_database_url(url: str) -> dict:
    """Turn `postgres://user:pass@host:5432/name?sslmode=require` or `sqlite:///abs/path.db`
    into a Django DATABASES entry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # A connection per request, task or socket frame, closed at its end (Django's advice under
            # ASGI): every request's database work runs in a thread of its own there, and CONN_MAX_AGE=60
            # kept one connection per such thread open until it was collected — bench/load.py ran
            # PostgreSQL out of connections ("too many clients"). A connection pooler in front of
            # PostgreSQL (PgBouncer) is the way to save the connects (docs/deploy.md).
            "OPTIONS": options,
            "CONN_MAX_AGE": 0,
        }
    if scheme == "sqlite":
        path = unquote(parts.path)
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif parts.netloc:
            path = parts.netloc + path
        return sqlite_database(path)
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {scheme!r} (use postgres:// or sqlite://)")


def sqlite_database(path: str) -> dict:
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on `timeout` instead of failing with "database is locked".
    # Persistent connections: channels closes "old" connections around every database_sync_to_async
    # call, and with the default CONN_MAX_AGE=0 each chat message paid for a fresh connect (a fifth
    # of the web process's time in bench/chat.py).
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
