#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, test on SQLite, then the
# database-sensitive tests again on PostgreSQL. Extra arguments go to the SQLite pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
scripts/setup.sh dev
scripts/system-deps.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy --no-incremental .
echo "== pytest (SQLite, the full suite)"
.venv/bin/python -m pytest -q "$@"
echo "== pytest (PostgreSQL, tests marked postgres)"
scripts/with-postgres.sh .venv/bin/python -m pytest -q -m postgres -p no:randomly
echo "== all green in $(( $(date +%s) - started )) s"
