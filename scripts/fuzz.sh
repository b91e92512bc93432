#!/usr/bin/env bash
# The long fuzz run: tests/fuzz with many more cases and a fresh random seed (the suite runs the
# same tests with a few hundred cases and a fixed seed).
#   FUZZ_EXAMPLES  cases per fuzz test (default 2000: about 35 minutes on 2 cores; 5000: 1.5 hours);
#                  it also makes every caller send all of schemathesis' boundary cases
#   FUZZ_SEED      the seed to use, to repeat a run (default: a new one, printed first)
# Extra arguments go to pytest, e.g. scripts/fuzz.sh -k queue_protocol
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1
export FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-2000}" FUZZ_RANDOM=1
seed="${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "fuzz: ${FUZZ_EXAMPLES} cases per test, seed ${seed} (repeat with FUZZ_SEED=${seed})"
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz \
  --hypothesis-seed="${seed}" "$@"
