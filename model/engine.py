"""The engine protocol: what the web layer needs from any generator (local threads, fake, remote)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from model.types import EngineLoad, GenerationRequest, GenerationStats, TextDelta


class EngineError(Exception):
    """A generation could not run; `user_message` is safe to show to the user."""

    user_message = "The model failed to answer. Please try again."


class EngineBusy(EngineError):
    """Refused for capacity; `retry_after` (seconds, at least 1) when the engine can tell when a
    place is likely to free, else None."""

    user_message = "The assistant is busy with other requests. Please try again in a moment."

    def __init__(self, *args: object, retry_after: int | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class PromptTooLong(EngineError):
    user_message = "Your message is too long. Please shorten it and try again."


class EngineClosed(EngineError):
    user_message = "The server is shutting down. Please try again shortly."


@dataclass(frozen=True)
class QueuePlace:
    """Where an admitted request waits for a place to run."""

    ahead: int  # requests that will start before it
    expected_wait: float  # seconds until it starts, as the engine estimates it now


class GenerationStream(Protocol):
    """Iterate once for text deltas; cancel() (or closing the iterator) stops the CPU work.

    The iteration ends when the generation has ended, normally or by raising its EngineError,
    and from then on `final` holds its stats. After cancel(), iterating on (or starting to)
    reaches that end within a decoding step.
    """

    @property
    def final(self) -> GenerationStats | None:
        """The frozen stats, set once when the generation has ended; None until then."""
        ...

    def __iter__(self) -> Iterator[TextDelta]: ...

    def cancel(self) -> None: ...

    def queue_place(self) -> QueuePlace | None:
        """Its place while it waits to start; None once it runs or has ended (or when the engine
        admits only requests that start at once)."""
        ...


class Engine(Protocol):
    def stream(self, request: GenerationRequest) -> GenerationStream:
        """Admit the request (or raise EngineBusy / PromptTooLong) and start generating."""
        ...

    @property
    def load(self) -> EngineLoad:
        """How many generations wait for a place and how many run now; never blocks on work."""
        ...

    def ready(self) -> bool:
        """Cheap readiness check: model loaded and workers alive. Never generates."""
        ...

    def close(self) -> None:
        """Stop all running generations and release the workers."""
        ...
