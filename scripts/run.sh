#!/usr/bin/env bash
# Set up .venv and start the app; it opens on the bundled sample comparison (Fashion-MNIST, old.pt -> new.pt).
# Extra arguments go to `streamlit run` (e.g. --server.port 8502).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m graceful_ui.serve --server.headless true --browser.gatherUsageStats false "$@"
