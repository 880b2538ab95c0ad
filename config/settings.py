"""GPT Store settings: one module, every knob an environment variable with a safe local default.

With nothing set, the site runs on one machine: SQLite under var/, an embedded redis-server on a
unix socket (started by `manage.py runstack`), Daphne and two Celery workers.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core.client_address import parse_networks
from core.embedded_redis import celery_broker_url, socket_path_for, url_for_socket
from core.env import envbool, envbytes, envfloat, envint, envlist, envstr, parse_database_url, sqlite_database

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("GPT_STORE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", True)


def _secret_key() -> str:
    key = envstr("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Development: generate once and keep it, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or CIDR networks);
# from anyone else those headers are ignored (core/client_address.py). Checked at start-up.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", [])
parse_networks(TRUSTED_PROXIES)

INSTALLED_APPS = [
    "daphne",
    "core.admin_config.OrganizationAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "core",
    "accounts",
    "upstreams",  # hosted models: below store (a deployment may serve an organization's upstream)
    "store",
    "finetune",
    "knowledge",
    "chat",
    "market",  # the marketplace: above store (installs serve the publisher's tuned models)
    "stack",  # runstack and the demo: the top floor, may import every app
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.security_headers.ContentSecurityPolicyMiddleware",
    # Before everything that reads the database: an outage answers 503, not a traceback.
    "core.db_outage.DatabaseOutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.ActiveOrganizationMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.organizations",
                "core.navigation.nav_section",
                "chat.onboarding.setup_checklist",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
DATABASES = {
    "default": parse_database_url(DATABASE_URL) if DATABASE_URL else sqlite_database(str(DATA_DIR / "db.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    # Being an organization admin is what grants Django admin access (see accounts/backends.py).
    "accounts.backends.OrganizationAdminBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "store:home"
LOGOUT_REDIRECT_URL = "store:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Daphne serves /static/ itself unless a proxy in front does (SERVE_STATIC=0).
SERVE_STATIC = envbool("SERVE_STATIC", True)

MEDIA_ROOT = Path(envstr("GPT_STORE_MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Redis: Celery broker, channel layer, rate limits ---------------------------------------
EMBEDDED_REDIS_SOCKET = socket_path_for(DATA_DIR)
REDIS_URL = envstr("REDIS_URL") or url_for_socket(EMBEDDED_REDIS_SOCKET)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "core.channel_layer.ReliableRedisChannelLayer",  # channels_redis without its loss on cancel
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, which is exactly channels_redis's
            # blocking-receive timeout: idle receives would fail. Block on the socket instead.
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "capacity": 1000,
            "expiry": 60,
            # Every WebSocket and inference reply of one web process shares that process's "specific."
            # list in Redis: give it room for bursts (the relay coalesces tokens, but many streams add up).
            "channel_capacity": {"specific.*": 10000},
        },
    }
}

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = celery_broker_url(REDIS_URL)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 6 * 3600}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
STALE_JOB_SECONDS = envint("STALE_JOB_SECONDS", 120)
FINETUNE_HEARTBEAT_SECONDS = envfloat("FINETUNE_HEARTBEAT_SECONDS", 5.0)
CELERY_BEAT_SCHEDULE = {
    # A training worker killed mid-job stops heartbeating; the reaper queues its job again.
    "reap-stale-finetune-jobs": {
        "task": "finetune.tasks.reap_stale_jobs",
        "schedule": envint("REAPER_INTERVAL_SECONDS", 30),
    },
    # A knowledge source whose embedding task was lost (broker down, worker killed) is queued again.
    "requeue-stalled-knowledge": {
        "task": "knowledge.tasks.requeue_stalled_versions",
        "schedule": envint("REAPER_INTERVAL_SECONDS", 30),
    },
    # A customer message stored by a web process that died before answering it is answered once.
    "sweep-unhandled-chat-messages": {
        "task": "chat.tasks.sweep_unhandled_messages",
        "schedule": envint("CHAT_SWEEP_INTERVAL_SECONDS", 10),
    },
}

# --- Models and artifacts ---------------------------------------------------------------------
# Where materialized base models (GGUF -> safetensors) are cached, keyed by the source file's hash.
MODEL_CACHE_DIR = Path(envstr("GPT_STORE_MODEL_CACHE", str(DATA_DIR / "models"))).resolve()
ARTIFACTS_DIR = Path(envstr("GPT_STORE_ARTIFACTS_DIR", str(DATA_DIR / "artifacts"))).resolve()


def _artifact_storage() -> dict:
    """Tuned models' weights, shared by every process (store/artifacts.py): by default a folder on this disk
    (ARTIFACTS_DIR); on several machines a shared volume there, or any storage class, e.g.
    GPT_STORE_ARTIFACTS_STORAGE=storages.backends.s3.S3Storage
    GPT_STORE_ARTIFACTS_STORAGE_OPTIONS='{"bucket_name": "gpt-store-artifacts"}' (pip install django-storages[s3])."""
    backend = envstr("GPT_STORE_ARTIFACTS_STORAGE", "django.core.files.storage.FileSystemStorage")
    try:
        options = json.loads(envstr("GPT_STORE_ARTIFACTS_STORAGE_OPTIONS") or "{}")
    except ValueError as error:
        raise ImproperlyConfigured(f"GPT_STORE_ARTIFACTS_STORAGE_OPTIONS must be a JSON object: {error}") from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured("GPT_STORE_ARTIFACTS_STORAGE_OPTIONS must be a JSON object")
    if backend.endswith(".FileSystemStorage"):
        options.setdefault("location", str(ARTIFACTS_DIR))
    return {"BACKEND": backend, "OPTIONS": options}


STORAGES["artifacts"] = _artifact_storage()
# Where a worker keeps its copies of artifacts from a storage that is not a local folder (keyed by content).
ARTIFACTS_CACHE_DIR = Path(envstr("GPT_STORE_ARTIFACTS_CACHE", str(DATA_DIR / "artifact-cache"))).resolve()
# Torch threads per worker process (0 = let torch decide).
TORCH_THREADS = envint("TORCH_THREADS", 0)
# "auto" picks cuda when available, else cpu.
INFERENCE_DEVICE = envstr("INFERENCE_DEVICE", "auto")
# Encoders (embeddings, retrieval) on a CPU: "float32", "bfloat16", or "auto" (bfloat16 where the CPU
# computes it natively): workers/models/loading.py, encoder_dtype_for, says what was measured.
INFERENCE_ENCODER_DTYPE = envstr("INFERENCE_ENCODER_DTYPE", "auto")
# Decode causal models whose weights came from a GGUF on their 4/8-bit blocks through a small C kernel built
# at first use (workers/serving/packed.py); 0: always the fp32 weights.
INFERENCE_PACKED_WEIGHTS = envbool("INFERENCE_PACKED_WEIGHTS", True)
# Keys/values of recent prompts kept per loaded chat model, so a prompt that starts like one of them (the
# same system prompt, the conversation so far) prefills only the rest (workers/serving/prompt_cache.py); 0: off.
INFERENCE_PROMPT_CACHE_BYTES = envbytes("INFERENCE_PROMPT_CACHE_BYTES", 128 * 1024**2)
TRAINING_DEVICE = envstr("TRAINING_DEVICE", "auto")

# --- Limits -------------------------------------------------------------------------------------
DATASET_MAX_BYTES = envbytes("DATASET_MAX_BYTES", 50 * 1000**2)
DATASET_MAX_LINE_CHARS = envint("DATASET_MAX_LINE_CHARS", 100_000)
KNOWLEDGE_MAX_BYTES = envbytes("KNOWLEDGE_MAX_BYTES", 20 * 1000**2)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
SERVING_MEMORY_BUDGET_BYTES = envbytes("SERVING_MEMORY_BUDGET_BYTES", 6 * 1024**3)
SERVING_MAX_BATCH = envint("SERVING_MAX_BATCH", 16)
# How long a request may wait for an inference worker to take it (then 503), and for the next
# piece of an accepted reply (model loading included).
SERVING_ACCEPT_TIMEOUT = envfloat("SERVING_ACCEPT_TIMEOUT", 15.0)
SERVING_IDLE_TIMEOUT = envfloat("SERVING_IDLE_TIMEOUT", 120.0)
# Chat widget floods: messages per minute per visitor and per client IP address.
CHAT_VISITOR_MESSAGES_PER_MINUTE = envint("CHAT_VISITOR_MESSAGES_PER_MINUTE", 20)
CHAT_IP_MESSAGES_PER_MINUTE = envint("CHAT_IP_MESSAGES_PER_MINUTE", 60)

# --- Security -----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
# HTTPS only: off by default so plain-HTTP runs (development, benchmarks) work; the production setup in
# docs/operations.md turns both on. HSTS is sent only on HTTPS responses. Behind a TLS-terminating
# proxy, list it in TRUSTED_PROXIES so its X-Forwarded-Proto counts (else every request redirects).
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Beat's periodic ticks stay out of the terminal unless they act or fail (core/log_filters.py).
    "filters": {"quiet_housekeeping": {"()": "core.log_filters.QuietHousekeeping"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["quiet_housekeeping"]}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}
