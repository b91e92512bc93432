"""LIKE patterns built from user text, with the wildcards escaped so "50%" or "a_b" match literally."""

from __future__ import annotations

LIKE_ESCAPE = "\\"


def contains_pattern(text: str) -> str:
    """A pattern for `column.ilike(pattern, escape=LIKE_ESCAPE)` that finds `text` anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
