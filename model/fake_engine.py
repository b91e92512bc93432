"""A fast, deterministic engine for UI and API tests: echoes the last user message word by word."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from model.admission import AdmissionGate
from model.types import GenerationRequest, GenerationStats, TextDelta


class FakeStream:
    def __init__(self, engine: FakeEngine, request: GenerationRequest) -> None:
        self._engine = engine
        self._request = request
        self._cancelled = threading.Event()
        self.stats = GenerationStats()

    def __iter__(self) -> Iterator[TextDelta]:
        last_user = next(
            (m.content for m in reversed(self._request.messages) if m.role == "user"), ""
        )
        words = f"You said: {last_user}".split(" ")
        limit = self._request.max_new_tokens or len(words)
        started = time.monotonic()
        try:
            for i, word in enumerate(words[:limit]):
                if self._cancelled.is_set():
                    self.stats.finish_reason = "cancelled"
                    return
                if self._engine.delay:
                    time.sleep(self._engine.delay)
                if i == 0:
                    self.stats.time_to_first_token = time.monotonic() - started
                self.stats.completion_tokens += 1
                yield TextDelta(word if i == 0 else " " + word)
            if self._cancelled.is_set():
                self.stats.finish_reason = "cancelled"
            else:
                self.stats.finish_reason = "length" if limit < len(words) else "stop"
        finally:
            self.stats.total_time = time.monotonic() - started
            self._engine.gate.release()

    def cancel(self) -> None:
        self._cancelled.set()


class FakeEngine:
    def __init__(self, delay: float = 0.0, max_concurrent: int = 4, max_queue: int = 16) -> None:
        self.delay = delay
        self.gate = AdmissionGate(max_concurrent, max_queue)
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest) -> FakeStream:
        self.gate.acquire()
        self.requests.append(request)
        return FakeStream(self, request)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        self.gate.close()
