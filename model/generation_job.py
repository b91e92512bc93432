"""One generation's shared state: what the decode scheduler fills with token ids, the stream drains.

It deliberately holds no reference to the stream, so an abandoned stream can be garbage-collected
and cancel its job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from model.engine import EngineError
from model.sampling import SamplingParams
from model.types import GenerationStats

END = object()  # queue sentinel: the worker is done (stats are final)


@dataclass(eq=False)
class GenerationJob:
    request_id: str
    input_ids: list[int]
    sampling: SamplingParams
    stats: GenerationStats
    created: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    error: EngineError | None = None  # raised to the caller after the last delta
    shutting_down: bool = False  # cancelled by engine.close(): the caller hears EngineClosed
    last_token: int | None = None
    thread: threading.Thread | None = None
    wake: Callable[[], None] | None = None  # lets a worker waiting in the queue see the cancel
    done: threading.Event = field(default_factory=threading.Event)  # set by the decoder at the end
    failure: BaseException | None = None  # what broke the decoding, re-raised by the worker

    def cancel(self) -> None:
        self.cancelled.set()
        if self.wake is not None:
            self.wake()

    def on_token(self, token_id: int) -> None:
        """Called by the worker for each generated id, as soon as it is sampled."""
        if self.stats.time_to_first_token is None:
            self.stats.time_to_first_token = time.monotonic() - self.created
        self.stats.completion_tokens += 1
        self.last_token = token_id
        self.tokens.put(token_id)
