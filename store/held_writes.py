"""Writes that could not reach the database, held in order and written when it is back.

A reply that finishes while the database is down must not be lost, nor its audit record: its final
save and its chat.reply record wait here, in the order they were made, and a job writes them once
the database answers again (the audit chain links them as it would have). The queue is bounded and
in memory: if the process dies during an outage, the held writes die with it (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from core.audit import AuditEvent, AuditSink
from core.store_outage import StoreUnreachable
from store.periodic import PeriodicJob

log = logging.getLogger("chat.store")

Write = Callable[[], object]


class HeldWrites:
    """Run a write now, or queue it behind the writes already held; `flush()` retries in order."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queue: deque[tuple[str, Write]] = deque()
        self._lock = threading.Lock()  # guards the queue
        self._flushing = threading.Lock()  # one flush at a time, so held writes keep their order
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def run(self, what: str, write: Write) -> None:
        """Write now if nothing is held (the common case costs no lock), else hold it."""
        if not self._queue:
            try:
                write()
                return
            except StoreUnreachable:
                pass
        with self._lock:
            if len(self._queue) >= self._capacity:
                self.dropped += 1
                log.error("database unreachable and held writes full: %s lost", what)
                return
            self._queue.append((what, write))
            held = len(self._queue)
        if held == 1:
            log.warning("database unreachable: holding writes until it is back")

    def flush(self) -> int:
        """Write what is held, oldest first, until done or the database fails again; how many."""
        written = 0
        with self._flushing:
            while self._queue:
                what, write = self._queue[0]
                try:
                    write()
                except StoreUnreachable:
                    break
                except Exception:  # a write that can never succeed must not block the rest
                    log.exception("a held write failed and is dropped: %s", what)
                with self._lock:
                    self._queue.popleft()
                written += 1
        if written:
            log.info("held writes written", extra={"count": written, "left": len(self._queue)})
        return written

    def job(self, every_seconds: float = 2.0) -> PeriodicJob:
        return PeriodicJob("held-writes", every_seconds, self.flush)


class HeldAuditSink:
    """An audit sink whose records wait in the held writes when the database is unreachable."""

    def __init__(self, inner: AuditSink, held: HeldWrites) -> None:
        self._inner = inner
        self._held = held

    def record(self, event: AuditEvent) -> None:
        self._held.run(event.type, lambda: self._inner.record(event))
