#!/usr/bin/env bash
# Set up and run the app. Extra arguments go to launch.py (e.g. --demo for the offline demo model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh requirements.txt
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1 GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python launch.py "$@"
