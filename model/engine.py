"""The engine protocol: what the web layer needs from any generator (local threads, fake, remote)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from model.types import EngineLoad, GenerationRequest, GenerationStats, TextDelta


class EngineError(Exception):
    """A generation could not run; `user_message` is safe to show to the user."""

    user_message = "The model failed to answer. Please try again."


class EngineBusy(EngineError):
    user_message = "The assistant is busy with other requests. Please try again in a moment."


class PromptTooLong(EngineError):
    user_message = "Your message is too long. Please shorten it and try again."


class EngineClosed(EngineError):
    user_message = "The server is shutting down. Please try again shortly."


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
