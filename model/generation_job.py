"""One generation's shared state: what the decode scheduler fills with token ids, the stream drains.

Only the decoder thread (model.decode_scheduler) writes the counters and ends the job; the
caller's thread reads token ids from the queue. finish() freezes the stats before it puts END on
that queue, so a reader that has taken END sees them (the queue's lock orders the two).

It deliberately holds no reference to the stream, so an abandoned stream can be garbage-collected
and cancel its job.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from model.engine import EngineClosed, EngineError
from model.sampling import SamplingParams
from model.types import FinishReason, GenerationStats

END = object()  # queue sentinel: the job has ended, its stats are final


@dataclass(eq=False)
class GenerationJob:
    request_id: str
    input_ids: list[int]
    sampling: SamplingParams
    dropped_messages: int = 0
    created: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    shutting_down: bool = False  # cancelled by engine.close(): the caller hears EngineClosed
    # Progress, written by the decoder thread only.
    completion_tokens: int = 0
    time_to_first_token: float | None = None
    cached_prompt_tokens: int = 0
    max_batch: int = 0
    # Set once, by finish().
    final: GenerationStats | None = None
    error: EngineError | None = None  # raised to the caller after the last delta
    ended: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()

    def on_token(self, token_id: int) -> None:
        """Called by the decoder for each generated id, as soon as it is sampled."""
        if self.time_to_first_token is None:
            self.time_to_first_token = time.monotonic() - self.created
        self.completion_tokens += 1
        self.tokens.put(token_id)

    def finish(
        self, reason: FinishReason, error: EngineError | None = None
    ) -> GenerationStats | None:
        """End the job: freeze its stats, then wake its reader; the stats, or None if it had
        ended already."""
        if self.final is not None:
            return None
        if error is None and self.shutting_down and reason == "cancelled":
            error = EngineClosed()
        self.error = error
        self.final = GenerationStats(
            prompt_tokens=len(self.input_ids),
            completion_tokens=self.completion_tokens,
            time_to_first_token=self.time_to_first_token,
            total_time=time.monotonic() - self.created,
            finish_reason=reason,
            dropped_messages=self.dropped_messages,
            request_id=self.request_id,
            cached_prompt_tokens=self.cached_prompt_tokens,
            max_batch=self.max_batch,
        )
        self.tokens.put(END)
        self.ended.set()
        return self.final
