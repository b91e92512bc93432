#!/usr/bin/env bash
# Set up and run the app. Extra arguments go to launch.py (e.g. --demo for the offline demo model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh requirements.txt
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1 GRADIO_ANALYTICS_ENABLED=False
# Big KV buffers go straight back to the OS when freed (see Dockerfile).
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}"
exec .venv/bin/python launch.py "$@"
