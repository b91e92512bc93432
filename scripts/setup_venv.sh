#!/usr/bin/env bash
# Create .venv with Python 3.11 and install pinned packages. Usage: scripts/setup_venv.sh requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
REQS="${1:-requirements.txt}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, alone and pinned, so pip never resolves a multi-GB CUDA build.
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/pip install --quiet --disable-pip-version-check -r "$REQS" -c constraints.txt
