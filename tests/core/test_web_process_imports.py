"""The web process (Daphne) must never import torch, transformers or peft."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import django
from config.asgi import application  # what Daphne loads
from django.urls import get_resolver
from django.conf import settings
from importlib import import_module

# Import every view and consumer the web process can reach.
def walk(patterns):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            walk(pattern.url_patterns)
        else:
            pattern.callback
walk(get_resolver().url_patterns)
import_module("config.routing")
for app in ("accounts", "store", "finetune", "knowledge", "chat"):
    for module in ("admin", "views", "urls", "consumers", "api", "answer_views", "replies", "client", "sources"):
        try:
            import_module(f"{app}.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"{app}.{module}":
                raise
loaded = sorted(name for name in ("torch", "transformers", "peft") if name in sys.modules)
print("LOADED:" + ",".join(loaded))
"""


def test_it_serves_pages_without_importing_ml_libraries(tmp_path):
    env = {"GPT_STORE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("LOADED:"), result.stdout


# A web-only install (`pip install .`, without the `worker` extra) has none of these: any import of them
# raises, as it would there. Then the web's own tests run in that interpreter: every route of the
# permission matrix renders, /v1 answers 503 when no inference worker is up, the widget socket talks.
WITHOUT_WORKER_EXTRA = """
import importlib.abc, sys

MISSING = {"torch", "transformers", "peft", "safetensors", "accelerate", "tokenizers", "gguf", "vaderSentiment"}

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ImportError(f"No module named {name!r} (web-only install, no [worker] extra)")
        return None

sys.meta_path.insert(0, NotInstalled())
for name in list(sys.modules):
    if name.split(".")[0] in MISSING:
        del sys.modules[name]
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""

WEB_TESTS = [
    "tests/test_permission_matrix.py",
    "tests/store/test_api_chat.py::test_it_answers_503_within_the_bound_when_no_worker_is_up",
    "tests/chat/test_widget_socket.py",
]


def test_it_serves_pages_v1_and_the_widget_socket_without_the_worker_extra(tmp_path):
    command = [sys.executable, "-c", WITHOUT_WORKER_EXTRA, "-q", "-x", *WEB_TESTS]
    # Its own data dir: the inner session starts (and at its end removes) its own Redis and database.
    env = {**os.environ, "GPT_STORE_DATA_DIR": str(tmp_path)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout[-2000:]


def test_the_blocker_makes_torch_unimportable():
    probe = WITHOUT_WORKER_EXTRA.replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))", "import torch")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and "web-only install" in result.stderr
