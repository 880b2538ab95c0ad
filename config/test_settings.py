"""Settings for the unit tests: the only place with an in-memory channel layer and eager Celery.

Tests that need the real topology (Daphne, Celery workers, Redis) use the live-stack fixture in
tests/conftest.py, which starts those processes with config.settings and a file database.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("GPT_STORE_DATA_DIR", str(Path(tempfile.gettempdir()) / f"gptstore-test-{os.getpid()}"))
# Materialized models are expensive to build: cache them outside the clone, shared by every run.
os.environ.setdefault("GPT_STORE_MODEL_CACHE", str(Path.home() / ".cache" / "gpt-store" / "models"))

from config.settings import *  # noqa: F403
from config.settings import DATA_DIR

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Unit tests run jobs inside a test transaction, which a heartbeat thread's own connection would wait
# on; the live and crash tests run real workers with the real interval.
FINETUNE_HEARTBEAT_SECONDS = 3600.0
# Fast hashing for unit tests; PBKDF2 stays available for users who sign in to the live stack, whose
# processes use the production hashers.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                    "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not :memory:, so the live stack's processes share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}  # noqa: F405
else:
    # One test database per session, as the SQLite file is (DATA_DIR is per process): a test that runs
    # pytest in a subprocess, or a second run against the same server, must not drop this one.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
MEDIA_ROOT = DATA_DIR / "media"
ARTIFACTS_DIR = DATA_DIR / "artifacts"
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
