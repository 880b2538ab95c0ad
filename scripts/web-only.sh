#!/usr/bin/env bash
# The web process as production installs it: `pip install .` WITHOUT the [worker] extra (no torch,
# transformers or peft), then Daphne from that environment serving a page, /v1 and the widget socket while
# an inference worker from .venv answers (scripts/web_only_check.py). The environment is var/venv-web,
# rebuilt only when pyproject.toml changes (a cold build downloads the web dependencies from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WEB_VENV:-var/venv-web}
PYTHON=${PYTHON:-python3}
fingerprint=$(sha256sum pyproject.toml | cut -c1-16)
if [ -e "$VENV" ] && [ ! -f "$VENV/.web-only" ]; then
  echo "$VENV exists but was not made by this script; refusing to replace it" >&2
  exit 1
fi
if [ ! -f "$VENV/.installed-$fingerprint" ]; then
  echo "Building $VENV (pip install . without the [worker] extra)…"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  touch "$VENV/.web-only"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check .
  # setuptools builds in the checkout: a second copy of every package under build/ that mypy would then
  # meet as duplicate modules on the next `make test`.
  rm -rf build
  touch "$VENV/.installed-$fingerprint"
fi
for module in torch transformers peft; do
  if "$VENV/bin/python" -c "import $module" 2>/dev/null; then
    echo "$module is importable in $VENV: the web install must not pull it" >&2
    exit 1
  fi
done
.venv/bin/python scripts/web_only_check.py "$VENV"
