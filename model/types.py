"""Typed data that crosses the engine boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion to run; sampling values are clamped by the engine, not trusted."""

    messages: tuple[ChatMessage, ...]
    user_key: str = "anonymous"  # who asked: used for fairness, never for authorization
    max_new_tokens: int | None = None  # None: the configured cap
    temperature: float | None = None  # None: the configured default
    top_p: float | None = None
    conversation_id: str | None = None  # lets an engine reuse a conversation's cache


@dataclass(frozen=True)
class TextDelta:
    """Newly decoded text; never splits a multi-byte character."""

    text: str


@dataclass(frozen=True)
class GenerationStats:
    """How one generation went: built once, when it has ended, by whoever ended it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None  # seconds from the request (queue wait included)
    total_time: float = 0.0  # seconds
    finish_reason: FinishReason = "stop"
    dropped_messages: int = 0  # oldest turns left out to fit max_input_tokens
    request_id: str = ""  # engine-side id, also in the server log and in error messages
    cached_prompt_tokens: int = 0  # prompt tokens whose keys and values came from the prefix cache
    max_batch: int = 0  # most generations decoded in one step together with this one


@dataclass(frozen=True)
class EngineLoad:
    """A snapshot of an engine's admission, for metrics."""

    waiting: int  # admitted requests waiting for their place
    running: int  # generations running now
