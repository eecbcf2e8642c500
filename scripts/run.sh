#!/usr/bin/env bash
# Set up .venv and compare the bundled old and new digits models on the bundled test split.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m graceful_core compare sample_data/models/old.pt sample_data/models/new.pt \
  --data sample_data/digits/test --json report.json "$@"
