"""Admission by expected wait: who runs now, who waits in line, who is told when to come back.

One rule for every engine. `rows` requests run at once; a newcomer that finds them all taken gets
a place in line (position 1 starts next). Each row frees about once per generation, so position p
expects to wait ceil(p / rows) generations of the recent average length (WaitEstimate). It is
queued if that is within `max_wait`, else refused at once with EngineBusy(retry_after): about when
a newcomer would be within it again. `max_queue` stays a hard bound (memory) whatever the estimate.

The local engine's DecodeScheduler applies the rule itself (no thread per request); AdmissionGate
applies it for engines whose callers wait in their own threads (the remote engine, the fake).
"""

from __future__ import annotations

import math
import threading
from collections import deque

from model.engine import EngineBusy, EngineClosed, QueuePlace

# The average before any generation has ended: on 2 cores, 8 rows decode ~10 tokens a second
# each, so a 300-token reply holds its row ~30 s. Errs long: a cold start refuses a few too many
# rather than promising waits it cannot keep. The first replies to end correct it.
SEED_SECONDS = 30.0
WEIGHT = 0.2  # each ended generation's share of the average: the last ten or so dominate


class WaitEstimate:
    """How long a generation holds a row (a moving average of the recent ones), and the wait that
    makes for a place in line. Not locked: its owner calls it under its own lock."""

    def __init__(
        self, rows: int, max_wait: float, seed: float = SEED_SECONDS, weight: float = WEIGHT
    ) -> None:
        self.rows = rows
        self.max_wait = max_wait
        self.average = seed
        self._weight = weight

    def observe(self, held: float) -> None:
        """A generation left its row after `held` seconds."""
        self.average += self._weight * (max(held, 0.0) - self.average)

    def wait_at(self, position: int) -> float:
        """Expected seconds before the request at `position` in line starts (<= 0: a row is free)."""
        if position <= 0:
            return 0.0
        return -(-position // self.rows) * self.average

    def admit(self, position: int) -> None:
        """Raise EngineBusy (with retry_after) unless `position` expects to start within max_wait."""
        wait = self.wait_at(position)
        if wait > self.max_wait:
            raise EngineBusy(
                f"expected wait {wait:.0f} s", retry_after=_seconds(wait - self.max_wait)
            )

    def busy(self, reason: str) -> EngineBusy:
        """A refusal whose retry_after is when some place frees: every average / rows seconds."""
        return EngineBusy(reason, retry_after=_seconds(self.average / self.rows))

    def place(self, ahead: int, position: int) -> QueuePlace:
        return QueuePlace(ahead=ahead, expected_wait=self.wait_at(position))


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


class Ticket:
    """A place in an AdmissionGate's line (compared by identity)."""

    __slots__ = ()


class AdmissionGate:
    """At most `max_concurrent` hold a slot; others wait in line, in order, admitted by the rule."""

    def __init__(
        self,
        max_concurrent: int,
        max_queue: int,
        wait_timeout: float = 300.0,
        *,
        max_wait: float = math.inf,
        seed: float = SEED_SECONDS,
    ) -> None:
        self._max_concurrent = max_concurrent
        self._max_queue = max_queue
        self._wait_timeout = wait_timeout
        self.estimate = WaitEstimate(max_concurrent, max_wait, seed)
        self._cond = threading.Condition()
        self._running = 0
        self._line: deque[Ticket] = deque()
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._line)

    def acquire(self, cancelled: threading.Event | None = None) -> None:
        """Take a slot, waiting in line; raise EngineBusy when the wait would be too long."""
        ticket = self.reserve()
        if ticket is not None:
            self.wait_reserved(ticket, cancelled)

    def reserve(self) -> Ticket | None:
        """Non-blocking first half of acquire: None if a slot was taken, else a place in line.

        Raises EngineBusy at once when the line is full or too long to wait in; a caller holding
        a place must then call wait_reserved() (or unreserve()).
        """
        with self._cond:
            if self._closed:
                raise EngineClosed()
            position = self._running + len(self._line) + 1 - self._max_concurrent
            if position <= 0 and not self._line:
                self._running += 1
                return None
            if len(self._line) >= self._max_queue:
                raise self.estimate.busy("the line is full")
            self.estimate.admit(position)
            ticket = Ticket()
            self._line.append(ticket)
            return ticket

    def wait_reserved(self, ticket: Ticket, cancelled: threading.Event | None = None) -> None:
        """Second half of acquire: wait until `ticket` is first in line and a slot is free."""
        with self._cond:
            try:
                ok = self._cond.wait_for(
                    lambda: (
                        self._closed
                        or (cancelled is not None and cancelled.is_set())
                        or (self._line[0] is ticket and self._running < self._max_concurrent)
                    ),
                    timeout=self._wait_timeout,
                )
            finally:
                self._line.remove(ticket)
                self._cond.notify_all()  # the next in line may be first now
            if self._closed:
                raise EngineClosed()
            if cancelled is not None and cancelled.is_set():
                raise EngineBusy("cancelled while waiting")
            if not ok:
                raise self.estimate.busy("waited past the queue timeout")
            self._running += 1

    def unreserve(self, ticket: Ticket) -> None:
        """Give back a place in line without waiting."""
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
            self._cond.notify_all()

    def place(self, ticket: Ticket) -> QueuePlace | None:
        """`ticket`'s place in line, or None if it has left the line."""
        with self._cond:
            try:
                ahead = self._line.index(ticket)
            except ValueError:
                return None
            position = self._running + ahead + 1 - self._max_concurrent
            return self.estimate.place(ahead, position)

    def release(self, held: float | None = None) -> None:
        """Give a slot back; `held`: the seconds it was held, which the estimate learns from."""
        with self._cond:
            self._running -= 1
            if held is not None:
                self.estimate.observe(held)
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancellation flags."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
