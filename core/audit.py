"""Audit events: what every layer reports, and the sink protocol the audit trail implements."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Event types, kept in one list so the admin filter and the tests agree.
LOGIN_SUCCESS = "login.success"
LOGIN_REFUSED = "login.refused"
LOGOUT = "logout"
SESSION_REVOKED = "session.revoked"
ACCESS_DENIED = "access.denied"
RATE_LIMITED = "rate.limited"
PROMPT_BLOCKED = "prompt.blocked"
# A turn is two records: chat.request when it is asked (outcome "started", or the engine's refusal,
# then nothing follows), chat.reply when it ends (complete, stopped, error, or interrupted by a
# server crash) with its token counts and timings. request_id and target (the conversation) pair them.
CHAT_REQUEST = "chat.request"
CHAT_REPLY = "chat.reply"
NOT_FOUND = "object.not_found"  # someone asked for an object that is not theirs
ADMIN_AUDIT_VIEWED = "admin.audit_viewed"
ADMIN_AUDIT_EXPORTED = "admin.audit_exported"
ADMIN_SESSION_REVOKED = "admin.session_revoked"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
TOKEN_REFUSED = "token.refused"
RETENTION_PURGED = "retention.purged"
# A conversation deleted by its owner (hidden at once, purged after the undo window), or restored.
CONVERSATION_DELETED = "conversation.deleted"
CONVERSATION_RESTORED = "conversation.restored"

EVENT_TYPES = (
    LOGIN_SUCCESS,
    LOGIN_REFUSED,
    LOGOUT,
    SESSION_REVOKED,
    ACCESS_DENIED,
    RATE_LIMITED,
    PROMPT_BLOCKED,
    CHAT_REQUEST,
    CHAT_REPLY,
    NOT_FOUND,
    ADMIN_AUDIT_VIEWED,
    ADMIN_AUDIT_EXPORTED,
    ADMIN_SESSION_REVOKED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    TOKEN_REFUSED,
    RETENTION_PURGED,
    CONVERSATION_DELETED,
    CONVERSATION_RESTORED,
)


@dataclass(frozen=True)
class AuditEvent:
    type: str
    actor: str | None = None  # User.key, or None before login
    ip: str | None = None
    request_id: str | None = None
    target: str | None = None  # e.g. a conversation id or a session id's short form
    outcome: str | None = None  # e.g. "completed", "stopped", "error", a refusal reason
    details: Mapping[str, Any] = field(default_factory=dict)  # masked before storage


class AuditSink(Protocol):
    def record(self, event: AuditEvent) -> None: ...


class LoggingAuditSink:
    """Writes events to the log only; used until a SQL audit trail is configured."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("chat.audit")

    def record(self, event: AuditEvent) -> None:
        self._logger.info(
            "audit %s",
            event.type,
            extra={"event": event.type, "outcome": event.outcome, "ip": event.ip},
        )


class MemoryAuditSink:
    """Collects events in memory, for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of_type(self, event_type: str) -> list[AuditEvent]:
        with self._lock:
            return [e for e in self.events if e.type == event_type]
