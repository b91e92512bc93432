"""What a service handler records about its caller, and the admin rule it refuses by.

Gradio handlers hidden from a page are still callable by name, so every admin-only handler asks
here itself; the admin tab and the API tokens tab share the rule and the audit records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from core.audit import ACCESS_DENIED, AuditEvent, AuditSink
from core.identity import User

log = logging.getLogger("chat.refusals")


class Caller(Protocol):
    user: User
    ip: str | None
    request_id: str | None


def admin_refusal(
    user: User, ip: str | None, require_admin_ip: Callable[[str | None], None]
) -> str | None:
    """None when `user` is an admin calling from an admin address, else the reason."""
    if not user.is_admin:
        return "not_admin"
    try:
        require_admin_ip(ip)
    except PermissionError:
        return "ip_not_allowed:admin"
    return None


def record_action(
    audit: AuditSink,
    caller: Caller,
    event_type: str,
    target: str | None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    """Audit what `caller` did (or was refused) to `target`."""
    audit.record(
        AuditEvent(
            event_type,
            actor=caller.user.key,
            ip=caller.ip,
            request_id=caller.request_id,
            target=target,
            outcome=outcome,
            details=details or {},
        )
    )


def record_refusal(audit: AuditSink, caller: Caller, action: str, reason: str) -> None:
    """Log (no personal data) and audit an access.denied for `action`."""
    log.warning("action refused", extra={"action": action, "reason": reason})
    record_action(audit, caller, ACCESS_DENIED, action, reason)
