"""The web process (Daphne) must never import torch, transformers or peft."""

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
