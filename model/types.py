"""Typed data that crosses the engine boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None  # seconds
    total_time: float = 0.0
    finish_reason: FinishReason = "stop"
    dropped_messages: int = 0  # oldest turns left out to fit max_input_tokens
    request_id: str = ""  # engine-side id, also in the server log and in error messages
    extra: dict[str, float] = field(default_factory=dict)
