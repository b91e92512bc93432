"""What a turn tells the reader, the audit trail and the saved reply when the engine refuses or fails."""

from __future__ import annotations

from model.engine import EngineBusy, EngineClosed, EngineError, PromptTooLong
from webui.i18n import text


def outcome_of(exc: EngineError) -> str:
    """The audit outcome and metrics reason of a refusal ("busy", "too_long", ...)."""
    if isinstance(exc, EngineBusy):
        return "busy"
    if isinstance(exc, PromptTooLong):
        return "too_long"
    if isinstance(exc, EngineClosed):
        return "shutting_down"
    return "error"


def retry_after_of(exc: EngineError) -> int | None:
    """Seconds until a busy engine expects a place (an HTTP API's Retry-After); None otherwise."""
    return exc.retry_after if isinstance(exc, EngineBusy) else None


def saved_notice(exc: EngineError) -> str:
    """The notice kept with a failed reply: its key, shown in the reader's language when the
    conversation is reopened (a busy engine's "try in N seconds" is stale by then)."""
    return "busy" if isinstance(exc, EngineBusy) else "engine_error"


def notice_for(exc: EngineError, locale: str) -> str:
    """What the reader is told, in their language."""
    if (seconds := retry_after_of(exc)) is not None:
        return text("busy_retry", locale, seconds=seconds)
    key = {
        "busy": "busy",
        "too_long": "prompt_too_long",
        "shutting_down": "shutting_down",
    }.get(outcome_of(exc), "engine_error")
    return text(key, locale)
