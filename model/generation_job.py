"""One generation's shared state, and the hooks that tie transformers' generate loop to it.

A job is what a worker (today one thread per request; later a batching scheduler) fills with
token ids, and what the caller's stream drains. It deliberately holds no reference to the stream,
so an abandoned stream can be garbage-collected and cancel its job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

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


class JobStreamer(BaseStreamer):
    """Feeds generate's new tokens into the job; generate's first put() is the prompt, skipped."""

    def __init__(self, job: GenerationJob) -> None:
        self._job = job
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            self._job.on_token(token_id)

    def end(self) -> None:
        pass  # the worker signals the end itself, after the stats are final


class StopOnEvent(StoppingCriteria):
    """Stops generate after the current decoding step once the event is set (cancel, close, GC)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device
        )
