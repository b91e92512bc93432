"""A job that runs on a schedule in a daemon thread until stopped (retention, reply recovery)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.store_outage import StoreUnreachable

log = logging.getLogger("chat.jobs")


class PeriodicJob:
    """Runs `step` now and then every `every_seconds`; a failed step is logged and retried next time.

    With `first_in_caller`, the first step runs in the thread that calls `start()` (so it is done
    before the server serves); otherwise the thread runs it.
    """

    def __init__(
        self,
        name: str,
        every_seconds: float,
        step: Callable[[], object],
        *,
        first_in_caller: bool = False,
    ) -> None:
        self._name = name
        self._every = every_seconds
        self._step = step
        self._first_in_caller = first_in_caller
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._first_in_caller:
            self._safe_step()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        if not self._first_in_caller:
            self._safe_step()
        while not self._stopped.wait(self._every):
            self._safe_step()

    def _safe_step(self) -> None:
        try:
            self._step()
        except StoreUnreachable:  # an outage: one line, not a traceback every interval
            log.warning("scheduled job skipped: database unreachable", extra={"job": self._name})
        except Exception:  # the job must not die; the next interval retries
            log.exception("scheduled job failed", extra={"job": self._name})
