#!/usr/bin/env bash
# Create (or reuse) the virtual environment in .venv and install the pinned requirements.
# Re-runnable: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# The project itself (the `graceful` command); its dependencies are the pins above.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
# Compile the numba kernels once into their on-disk cache (a few seconds on a fresh install; then a cache load).
.venv/bin/python scripts/compile_kernels.py
