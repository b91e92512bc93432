"""How many cases a fuzz test runs, and with which seed.

The suite runs a fixed number of cases with a fixed seed (the same inputs every run); scripts/fuzz.sh
sets FUZZ_EXAMPLES for many more cases and FUZZ_RANDOM=1 for fresh inputs on each run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

# The server runs in this process, so its threads use the `random` module while a test draws;
# Hypothesis takes that for a strategy using `random` and warns.
SERVER_IN_PROCESS = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
)


def long_run() -> bool:
    """True when scripts/fuzz.sh runs the package (FUZZ_EXAMPLES set)."""
    return bool(os.environ.get("FUZZ_EXAMPLES"))


def examples(in_suite: int) -> int:
    """`in_suite` cases in the suite's short run; FUZZ_EXAMPLES (if set) in the long run."""
    return int(os.environ.get("FUZZ_EXAMPLES") or in_suite)


def fuzz_settings(in_suite: int, **overrides: object) -> settings:
    """Hypothesis settings for a test against the live server: no deadline (a request's time depends
    on the machine), no example database, derandomized unless FUZZ_RANDOM=1."""
    return settings(
        max_examples=examples(in_suite),
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
        database=None,
        deadline=None,
        # A failure against a live server is reported as it happened; shrinking resends requests
        # to a server whose state has moved on, which is slow and rarely clearer.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        **overrides,
    )
