"""The engine protocol: what the web layer needs from any generator (local threads, fake, remote)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from model.types import GenerationRequest, GenerationStats, TextDelta


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
    """Iterate for text deltas; `cancel()` (or closing the iterator) stops the CPU work."""

    stats: GenerationStats

    def __iter__(self) -> Iterator[TextDelta]: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    def stream(self, request: GenerationRequest) -> GenerationStream:
        """Admit the request (or raise EngineBusy / PromptTooLong) and start generating."""
        ...

    def ready(self) -> bool:
        """Cheap readiness check: model loaded and workers alive. Never generates."""
        ...

    def close(self) -> None:
        """Stop all running generations and release the workers."""
        ...
