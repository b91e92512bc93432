"""Bounded admission: at most `max_concurrent` generations run, at most `max_queue` wait."""

from __future__ import annotations

import threading

from model.engine import EngineBusy, EngineClosed


class AdmissionGate:
    def __init__(self, max_concurrent: int, max_queue: int, wait_timeout: float = 300.0) -> None:
        self._max_concurrent = max_concurrent
        self._max_queue = max_queue
        self._wait_timeout = wait_timeout
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    def acquire(self, cancelled: threading.Event | None = None) -> None:
        """Take a slot, waiting in a bounded queue; raise EngineBusy when the queue is full."""
        if not self.reserve():
            self.wait_reserved(cancelled)

    def reserve(self) -> bool:
        """Non-blocking first half of acquire: True if a slot was taken, False if a queue place was.

        Raises EngineBusy when the queue is full, so a refusal is immediate; a caller holding a queue
        place must then call wait_reserved() (or unreserve()).
        """
        with self._cond:
            if self._closed:
                raise EngineClosed()
            if self._running < self._max_concurrent and self._waiting == 0:
                self._running += 1
                return True
            if self._waiting >= self._max_queue:
                raise EngineBusy()
            self._waiting += 1
            return False

    def wait_reserved(self, cancelled: threading.Event | None = None) -> None:
        """Second half of acquire: wait in the queue place taken by reserve() until a slot frees."""
        with self._cond:
            try:
                ok = self._cond.wait_for(
                    lambda: (
                        self._closed
                        or (cancelled is not None and cancelled.is_set())
                        or self._running < self._max_concurrent
                    ),
                    timeout=self._wait_timeout,
                )
            finally:
                self._waiting -= 1
            if self._closed:
                raise EngineClosed()
            if cancelled is not None and cancelled.is_set():
                raise EngineBusy()
            if not ok:
                raise EngineBusy()
            self._running += 1

    def unreserve(self) -> None:
        """Give back a queue place taken by reserve() without waiting."""
        with self._cond:
            self._waiting -= 1
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancellation flags."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
