"""A fast, deterministic engine for UI and API tests: echoes the last user message word by word."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

from model.admission import SEED_SECONDS, AdmissionGate
from model.engine import EngineError, QueuePlace
from model.types import EngineLoad, FinishReason, GenerationRequest, GenerationStats, TextDelta


class FakeStream:
    def __init__(self, engine: FakeEngine, request: GenerationRequest) -> None:
        self._engine = engine
        self._request = request
        self._cancelled = threading.Event()
        self._admitted = time.monotonic()  # stream() returns once the gate gave it a slot
        self.final: GenerationStats | None = None

    def __iter__(self) -> Iterator[TextDelta]:
        last_user = next(
            (m.content for m in reversed(self._request.messages) if m.role == "user"), ""
        )
        words = f"You said: {last_user}".split(" ")
        limit = self._request.max_new_tokens or len(words)
        started = time.monotonic()
        sent, first_at = 0, None
        reason: FinishReason = "cancelled"  # unless it gets to the end
        try:
            for word in words[:limit]:
                if self._cancelled.is_set():
                    return
                if sent == self._engine.fail_after:
                    reason = "error"
                    raise EngineError(f"fake failure after {sent} words")
                if self._engine.delay:
                    time.sleep(self._engine.delay)
                if first_at is None:
                    first_at = time.monotonic() - started
                sent += 1
                yield TextDelta(word if sent == 1 else " " + word)
            if not self._cancelled.is_set():
                reason = "length" if limit < len(words) else "stop"
        finally:
            # The iterating thread ends the generation, closed or not: the stats, then the slot.
            self.final = GenerationStats(
                completion_tokens=sent,
                time_to_first_token=first_at,
                total_time=time.monotonic() - started,
                finish_reason=reason,
            )
            self._engine.gate.release(held=time.monotonic() - self._admitted)

    def cancel(self) -> None:
        self._cancelled.set()

    def queue_place(self) -> QueuePlace | None:
        return None  # it waited in stream(), which returns once it runs


class FakeEngine:
    def __init__(
        self,
        delay: float = 0.0,
        max_concurrent: int = 4,
        max_queue: int = 16,
        fail_after: int | None = None,  # words sent before each stream fails with EngineError
        max_wait: float = math.inf,  # seconds of expected wait past which it refuses (model.admission)
        seed: float = SEED_SECONDS,  # the generation length it expects before any has ended
    ) -> None:
        self.delay = delay
        self.fail_after = fail_after
        # Tests take its slots directly. stream() waits in its line, as the remote engine's
        # iteration does.
        self.gate = AdmissionGate(max_concurrent, max_queue, max_wait=max_wait, seed=seed)
        self.requests: list[GenerationRequest] = []

    @property
    def load(self) -> EngineLoad:
        return EngineLoad(waiting=self.gate.waiting, running=self.gate.running)

    def stream(self, request: GenerationRequest) -> FakeStream:
        self.gate.acquire()
        self.requests.append(request)
        return FakeStream(self, request)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        self.gate.close()
