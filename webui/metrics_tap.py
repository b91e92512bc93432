"""Feed the metrics from the audit stream: every login, refusal and chat turn is already an event."""

from __future__ import annotations

from model.types import GenerationStats
from core.audit import (
    ACCESS_DENIED,
    CHAT_REPLY,
    CHAT_REQUEST,
    LOGIN_REFUSED,
    LOGIN_SUCCESS,
    PROMPT_BLOCKED,
    RATE_LIMITED,
    TOKEN_REFUSED,
    AuditEvent,
    AuditSink,
)
from webui.metrics import Metrics

_REFUSALS = {ACCESS_DENIED, RATE_LIMITED, TOKEN_REFUSED, PROMPT_BLOCKED}
_ENGINE_REFUSALS = {"busy", "too_long", "shutting_down"}
_FINISH = {"complete": "stop", "stopped": "cancelled"}


class MetricsAuditTap:
    """An AuditSink that records to `inner` first, then counts; a metrics bug never loses a record.

    A turn is counted once: as a refusal when its chat.request says the engine refused it, else
    from its chat.reply (a "started" chat.request only says the turn began)."""

    def __init__(self, inner: AuditSink, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def record(self, event: AuditEvent) -> None:
        self._inner.record(event)
        metrics = self._metrics
        if event.type == LOGIN_SUCCESS:
            metrics.record_login("success")
        elif event.type == LOGIN_REFUSED:
            metrics.record_login("refused")
            metrics.record_refusal(f"login:{event.outcome}")
        elif event.type in _REFUSALS:
            metrics.record_refusal(event.type)
        elif event.type == CHAT_REPLY or (
            event.type == CHAT_REQUEST and event.outcome != "started"
        ):
            self._chat(event)

    def _chat(self, event: AuditEvent) -> None:
        outcome = event.outcome or "error"
        if outcome in _ENGINE_REFUSALS:
            self._metrics.record_refusal(f"chat:{outcome}")
            return
        if outcome == "interrupted":
            # Written by start-up recovery for a reply of a process that died; its counts died with
            # it, and the audit trail (not this process's metrics) is where such turns are found.
            return
        if outcome == "error":
            self._metrics.record_error("engine")
        details = event.details
        self._metrics.observe_generation(
            GenerationStats(
                prompt_tokens=int(details.get("prompt_tokens") or 0),
                completion_tokens=int(details.get("reply_tokens") or 0),
                time_to_first_token=details.get("ttft_s"),
                total_time=float(details.get("total_s") or 0.0),
                finish_reason=_FINISH.get(outcome, "error"),
            )
        )
