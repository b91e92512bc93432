"""The image holds every module launch.py can import: a package left out fails only in the container."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the server needs at run time; tests, benchmarks and scripts stay out of the image.
NOT_SHIPPED = {"tests", "bench", "scripts", "deploy", "docs", "data"}


def test_the_image_copies_every_top_level_module_and_package():
    copied = set()
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if match := re.match(r"COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", line.strip()):
            copied.update(item.rstrip("/") for item in match.group(1).split())
    needed = {p.name for p in ROOT.glob("*.py")} | {
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED
    }
    assert needed - copied == set()
