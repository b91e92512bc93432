"""A reply waiting in the engine's line: its place, reported while a reader thread waits for the
first token (iterating a stream blocks until then, and engines admit a waiting request when its
stream is read: the remote one sends it then)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

from model.engine import GenerationStream, QueuePlace
from model.types import TextDelta

# The page is told the place this often (the first look comes sooner: a reply that starts at once
# shows no line at all).
QUEUE_POLL_SECONDS = 1.0
FIRST_POLL_SECONDS = 0.25
STOP_WAIT_SECONDS = 5.0  # how long a reply stopped in line waits for its reader thread to end
# While a reply waits in line, a Stop from another tab is looked for this often (one GET each).
STOP_POLL_SECONDS = 0.1


class FirstDelta:
    """Waits for a stream's first delta on a thread of its own, so that the turn can say where it
    stands in the engine's line meanwhile (iterating blocks until the first token)."""

    def __init__(self, deltas: Iterator[TextDelta]) -> None:
        self._deltas = deltas
        self._done = threading.Event()
        self._delta: TextDelta | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._read, name="first-delta", daemon=True).start()

    def _read(self) -> None:
        try:
            self._delta = next(self._deltas, None)
        except BaseException as exc:  # handed to the turn's thread, which handles it as before
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """True once the first delta (or the end, or an error) has come."""
        return self._done.wait(timeout)

    def then(self, deltas: Iterator[TextDelta]) -> Iterator[TextDelta]:
        """The first delta, then the rest of `deltas`; raises the reader's error. (A chain, not a
        generator: dropping it on a stop must not close `deltas`, which the turn reads to its end.)"""
        if self._error is not None:
            raise self._error
        return itertools.chain(() if self._delta is None else (self._delta,), deltas)


def places_in_line(
    stream: GenerationStream,
    first: FirstDelta,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[QueuePlace | None]:
    """About every QUEUE_POLL_SECONDS until the first delta: the place while the stream waits for
    one, then None (admitted, no text yet). Each is also where the caller may close the turn (a
    stop, a new chat), which it cannot while the turn waits silently. A Stop from another tab
    (`stopped`) cancels the stream: its end then comes as the first delta."""
    timeout = FIRST_POLL_SECONDS
    while not _first_or_stop(first, timeout, stream, stopped):
        timeout = QUEUE_POLL_SECONDS
        yield stream.queue_place()


def _first_or_stop(
    first: FirstDelta, timeout: float, stream: GenerationStream, stopped: Callable[[], bool]
) -> bool:
    """Wait up to `timeout` for the first delta, looking for a Stop every STOP_POLL_SECONDS (a
    Stop cancels the stream, which the engine then ends); True once the first delta has come."""
    deadline = time.monotonic() + timeout
    while not first.wait(max(0.0, min(STOP_POLL_SECONDS, deadline - time.monotonic()))):
        if stopped():
            stream.cancel()
        if time.monotonic() >= deadline:
            return False
    return True
