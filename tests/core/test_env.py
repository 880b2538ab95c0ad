import pytest
from django.core.exceptions import ImproperlyConfigured

from core.env import envbool, envbytes, envint, envlist, parse_database_url


def test_it_reads_booleans_in_common_spellings():
    assert envbool("X", False, {"X": "yes"}) is True
    assert envbool("X", True, {"X": "0"}) is False
    assert envbool("X", True, {}) is True


def test_it_rejects_a_bad_boolean_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        envbool("DEBUG", False, {"DEBUG": "maybe"})


def test_it_reads_integers_and_rejects_garbage():
    assert envint("N", 3, {"N": "1_000"}) == 1000
    assert envint("N", 3, {}) == 3
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        envint("N", 3, {"N": "three"})


def test_it_reads_sizes_with_units():
    assert envbytes("S", 1, {"S": "50MB"}) == 50_000_000
    assert envbytes("S", 1, {"S": "1.5GiB"}) == int(1.5 * 1024**3)
    assert envbytes("S", 7, {}) == 7
    with pytest.raises(ImproperlyConfigured, match="unknown size unit"):
        envbytes("S", 1, {"S": "12 parsecs"})
    with pytest.raises(ImproperlyConfigured, match="must be a size"):
        envbytes("S", 1, {"S": "lots"})


def test_it_splits_lists():
    assert envlist("H", ["a"], {"H": "x.example, y.example,"}) == ["x.example", "y.example"]
    assert envlist("H", ["a"], {}) == ["a"]


def test_it_parses_a_postgres_url():
    db = parse_database_url("postgres://shop:s%40cret@db.internal:6543/store?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "shop", "s@cret", "db.internal", "6543", "store")
    assert db["OPTIONS"] == {"sslmode": "require"}
    # Never persistent: under ASGI persistent connections pile up, one per request thread.
    assert db["CONN_MAX_AGE"] == 0


def test_it_parses_an_absolute_sqlite_url_with_wal_settings():
    db = parse_database_url("sqlite:////srv/store/db.sqlite3")
    assert db["NAME"] == "/srv/store/db.sqlite3"
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_it_rejects_an_unknown_database_scheme():
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        parse_database_url("mysql://x@y/z")
