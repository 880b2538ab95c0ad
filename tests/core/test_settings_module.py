"""The settings module itself, loaded in a fresh interpreter with a given environment."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load_settings(tmp_path, **env):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL",
                                                                    "REDIS_URL"}}
    environment.update({"GPT_STORE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}, **env)
    code = ("import django; from django.conf import settings; django.setup(); "
            "print(settings.SECRET_KEY); print(settings.DATABASES['default']['ENGINE']); "
            "print(settings.CELERY_BROKER_URL); print(settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0])")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True)


def test_it_generates_a_secret_key_once_in_development(tmp_path):
    first = _load_settings(tmp_path, DEBUG="1")
    second = _load_settings(tmp_path, DEBUG="1")
    assert first.returncode == 0, first.stderr
    key = first.stdout.splitlines()[0]
    assert len(key) > 40
    assert second.stdout.splitlines()[0] == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = _load_settings(tmp_path, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_it_uses_postgres_and_external_redis_from_the_environment(tmp_path):
    result = _load_settings(tmp_path, DEBUG="0", SECRET_KEY="x" * 50,
                            DATABASE_URL="postgres://u:p@db:5432/store", REDIS_URL="redis://cache:6379/2")
    assert result.returncode == 0, result.stderr
    _, engine, broker, layer = result.stdout.splitlines()
    assert engine == "django.db.backends.postgresql"
    assert broker == "redis://cache:6379/2"
    assert "redis://cache:6379/2" in layer


def test_it_defaults_to_sqlite_and_the_embedded_redis_socket(tmp_path):
    result = _load_settings(tmp_path, DEBUG="1")
    _, engine, broker, layer = result.stdout.splitlines()
    assert engine == "django.db.backends.sqlite3"
    assert broker == f"redis+socket://{tmp_path.resolve()}/redis.sock"
    assert f"unix://{tmp_path.resolve()}/redis.sock" in layer
