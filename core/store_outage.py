"""What a caller of the database sees when it cannot be reached: one domain exception.

store.database turns SQLAlchemy's connection failures into StoreUnreachable, so the web layer
answers 503 "try again" (and holds a finished reply's writes) without importing SQLAlchemy types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class StoreUnreachable(Exception):
    """The database could not be reached or did not answer in time; retry shortly."""


class Writes(Protocol):
    """Where a write goes that must not be lost to an outage (store.held_writes.HeldWrites)."""

    def run(self, what: str, write: Callable[[], object]) -> None: ...


class WriteNow:
    """No holding: the write runs at once and its errors reach the caller (tests, tools)."""

    def run(self, what: str, write: Callable[[], object]) -> None:
        write()
