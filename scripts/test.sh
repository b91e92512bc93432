#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then lint and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh requirements-dev.txt
scripts/fetch_weights.sh
scripts/start_services.sh
if [ -x tests/e2e/install.sh ]; then tests/e2e/install.sh; fi
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python scripts/check_links.py
exec .venv/bin/python -m pytest -q "$@"
