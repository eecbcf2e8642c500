#!/usr/bin/env bash
# Set up .venv, lint and check the formatting (ruff), check the import contracts (lint-imports, pyproject.toml), type-check (basedpyright,
# standard mode, zero errors), and run the whole test suite (unit, property, doctests, app and real-browser tests).
# The browser tests need Debian's chromium at /usr/bin/chromium; as root this script installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
mkdir -p test-artifacts
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/basedpyright
# Each file runs on one worker (its module fixtures: a served app, a browser), in the order tests/conftest.py gives
# (the longest files first). The last run's temporary folders (the browser tests' server logs, streamlit-PORT.log)
# stay in test-artifacts/pytest/ until the next run.
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --basetemp=test-artifacts/pytest \
  --durations=25 "$@"
