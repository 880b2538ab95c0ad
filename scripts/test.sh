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
# The web process installed for real without the [worker] extra (var/venv-web, rebuilt when pyproject.toml
# changes: ~95 s cold, from PyPI); ~50 s with it built: Daphne from it serves a page, /v1 and the widget.
stage "web-only install (no torch): Daphne from var/venv-web, an inference worker from .venv"
scripts/web-only.sh
# The multi-process topology tests (tests/topology: two Daphne processes, two inference workers, nginx,
# on PostgreSQL and Redis over TCP) run once, in the PostgreSQL run: they need PostgreSQL, and starting
# that cluster twice would add minutes for nothing.
stage "pytest (SQLite, Redis on a unix socket: the whole suite but the topology tests)"
.venv/bin/python -m pytest -q -m "not topology" "$@"
stage "pytest (PostgreSQL, Redis over TCP: the whole suite but the topology tests)"
TEST_REDIS=tcp scripts/with-postgres.sh .venv/bin/python -m pytest -q -p no:randomly -m "not topology" "$@"
# In a session of their own: the outage drill stops and restarts PostgreSQL, which ends every connection
# the session's threads hold — tests after it would meet them.
stage "pytest (the topology tests: nginx, 2 Daphne, 2 inference workers, training, beat on PostgreSQL)"
status=0
TEST_REDIS=tcp scripts/with-postgres.sh .venv/bin/python -m pytest -q -p no:randomly -m topology "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ]  # 5: the arguments named no topology test
echo "== all green in $(( $(date +%s) - started )) s"
