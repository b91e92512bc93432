"""Count logins and refusals from the audit stream: each is already an event of its own type.

Chat turns are not counted here: ChatService reports each to the metrics itself
(webui.chat_service.TurnObserver), with the engine's own stats.
"""

from __future__ import annotations

from core.audit import (
    ACCESS_DENIED,
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


class MetricsAuditTap:
    """An AuditSink that records to `inner` first, then counts; a metrics bug never loses a record."""

    def __init__(self, inner: AuditSink, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def record(self, event: AuditEvent) -> None:
        self._inner.record(event)
        if event.type == LOGIN_SUCCESS:
            self._metrics.record_login("success")
        elif event.type == LOGIN_REFUSED:
            self._metrics.record_login("refused")
            self._metrics.record_refusal(f"login:{event.outcome}")
        elif event.type in _REFUSALS:
            self._metrics.record_refusal(event.type)
