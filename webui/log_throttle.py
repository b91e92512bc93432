"""At most a few log lines per source address and message, so that a flood cannot flood the log.

Refusals and protocol errors are logged with the client's address in `ip` (an `extra=` field). A
record that carries one is let through `burst` times per `window` seconds for each (address,
message); the rest are counted, and the first line let through after that names how many were held
back (`suppressed`). Records without an address (start-up, errors, the app's own events) always
pass. The table of addresses is bounded: past `max_sources` the least recently seen is forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Window:
    started: float
    passed: int = 0
    held: int = 0


class SourceThrottle(logging.Filter):
    def __init__(
        self,
        burst: int = 5,
        window: float = 60.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst, self.window, self.max_sources = burst, window, max_sources
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._lock = threading.Lock()  # records arrive from the loop and from worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        source = getattr(record, "ip", None)
        if not source:
            return True
        key = (str(source), str(record.msg))
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window:
                held = window.held if window else 0
                window = self._windows[key] = _Window(started=now)
                if held:
                    record.suppressed = held
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_sources:
                self._windows.popitem(last=False)
            if window.passed >= self.burst:
                window.held += 1
                return False
            window.passed += 1
            return True
