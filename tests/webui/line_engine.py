"""FakeEngine with a waiting line the caller can see: stream() takes a place in line at once (or
refuses), and iterating waits for a slot, as the real and remote engines do; meanwhile
queue_place() says where the stream stands."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from model.admission import Ticket
from model.engine import EngineBusy, QueuePlace
from model.fake_engine import FakeEngine, FakeStream
from model.types import EngineLoad, GenerationRequest, GenerationStats, TextDelta


class LineStream:
    def __init__(self, fake: FakeEngine, request: GenerationRequest, ticket: Ticket | None):
        self._fake, self._request, self._ticket = fake, request, ticket
        self._cancelled = threading.Event()
        self._running: FakeStream | None = None
        self._final: GenerationStats | None = None

    @property
    def final(self) -> GenerationStats | None:
        return self._running.final if self._running is not None else self._final

    def __iter__(self) -> Iterator[TextDelta]:
        return self._deltas()

    def _deltas(self) -> Iterator[TextDelta]:
        if self._ticket is not None:
            try:
                self._fake.gate.wait_reserved(self._ticket, self._cancelled)
            except EngineBusy:
                if not self._cancelled.is_set():
                    raise
                self._final = GenerationStats(finish_reason="cancelled")  # stopped in line
                return
            finally:
                self._ticket = None
        self._running = FakeStream(self._fake, self._request)
        if self._cancelled.is_set():
            self._running.cancel()
        yield from self._running

    def cancel(self) -> None:
        self._cancelled.set()
        self._fake.gate.wake()
        if self._running is not None:
            self._running.cancel()

    def queue_place(self) -> QueuePlace | None:
        ticket = self._ticket
        return self._fake.gate.place(ticket) if ticket is not None else None


class LineEngine:
    """The Engine protocol over a FakeEngine (`fake`), whose gate tests may hold directly."""

    def __init__(self, fake: FakeEngine) -> None:
        self.fake = fake

    @property
    def load(self) -> EngineLoad:
        return self.fake.load

    def stream(self, request: GenerationRequest) -> LineStream:
        ticket = self.fake.gate.reserve()
        self.fake.requests.append(request)
        return LineStream(self.fake, request, ticket)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        self.fake.close()
