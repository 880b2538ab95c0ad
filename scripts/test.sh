#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, lint, type-check, then every test twice: on SQLite
# with the embedded Redis on a unix socket (the laptop topology), and on PostgreSQL with a standalone
# redis-server over loopback TCP (the production topology). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - started )) s in)"; }
scripts/setup.sh dev
scripts/system-deps.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1

stage "ruff"
.venv/bin/ruff check .
stage "mypy"
.venv/bin/mypy --no-incremental .
stage "pytest (SQLite, Redis on a unix socket: the whole suite)"
.venv/bin/python -m pytest -q "$@"
stage "pytest (PostgreSQL, Redis over TCP: the whole suite)"
TEST_REDIS=tcp scripts/with-postgres.sh .venv/bin/python -m pytest -q -p no:randomly "$@"
echo "== all green in $(( $(date +%s) - started )) s"
