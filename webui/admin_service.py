"""Admin actions, each re-checking role and admin IP on the server and each audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core.audit import (
    ADMIN_AUDIT_EXPORTED,
    ADMIN_AUDIT_VIEWED,
    ADMIN_SESSION_REVOKED,
    TOKEN_REVOKED,
    AuditSink,
)
from core.identity import User
from core.sessions import Session, SessionStore
from webui.caller_audit import admin_refusal, record_action, record_refusal
from webui.people import person


class AdminRefused(PermissionError):
    """Not an admin, or not from an admin address; the caller shows a generic refusal."""


@dataclass(frozen=True)
class AdminContext:
    user: User
    ip: str | None
    request_id: str | None = None


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    type: str | None = None
    text: str | None = None
    page: int = 1  # counted from 1, as people count pages
    page_size: int = 50


@dataclass(frozen=True)
class AuditView:
    """One page of the audit trail as shown: `page` is within 1..`pages`, and `pages` >= 1."""

    records: list[Any]  # store.audit_chain.AuditRecord, newest first
    total: int
    page: int
    pages: int
    names: dict[str, str]  # user key -> name and e-mail, for the users the server knows


@dataclass(frozen=True)
class UserRevoked:
    sessions: int  # sessions ended
    tokens: int  # API tokens revoked


class AdminService:
    def __init__(
        self,
        audit_log: Any,  # store.audit_log.AuditLog: query / export_csv
        audit: AuditSink,
        sessions: SessionStore,
        require_admin_ip: Callable[[str | None], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tokens: Any = None,  # store.api_tokens.ApiTokenStore: a user's tokens go with their sessions
    ) -> None:
        self._log = audit_log
        self._audit = audit
        self._sessions = sessions
        self._tokens = tokens
        self._require_admin_ip = require_admin_ip
        self._clock = clock

    def check(self, ctx: AdminContext, action: str) -> None:
        """Role and address, checked in every handler: hidden Gradio handlers are still callable."""
        reason = admin_refusal(ctx.user, ctx.ip, self._require_admin_ip)
        if reason is not None:
            record_refusal(self._audit, ctx, action, reason)
            raise AdminRefused(reason)

    def audit_page(self, ctx: AdminContext, query: AuditQuery) -> AuditView:
        """The asked page, or the last one when it asks past the end (records come and go)."""
        self.check(ctx, "audit.view")
        directory = self._directory()
        query = replace(query, actor=_actor_key(query.actor, directory))
        wanted = max(1, query.page)
        found = self._query(query, wanted)
        pages = max(1, -(-found.total // found.limit))
        if wanted > pages:
            wanted = pages
            found = self._query(query, wanted)
            pages = max(1, -(-found.total // found.limit))
        shown = replace(query, page=wanted)
        record_action(self._audit, ctx, ADMIN_AUDIT_VIEWED, None, details=_describe(shown))
        actors = {r.actor for r in found.records if r.actor}
        names = {key: name for key, name in directory.items() if key in actors}
        return AuditView(found.records, found.total, min(wanted, pages), pages, names)

    def _query(self, query: AuditQuery, page: int) -> Any:
        return self._log.query(
            since=query.since,
            until=query.until,
            actor=query.actor or None,
            type=query.type or None,
            text=query.text or None,
            limit=query.page_size,
            offset=(page - 1) * query.page_size,
        )

    def _directory(self) -> dict[str, str]:
        """Names and e-mails of the users with a session or a token: audit records keep keys only."""
        users = [t.owner for t in self._tokens.list_tokens()] if self._tokens is not None else []
        users += [s.user for s in self._sessions.list_active(self._clock())]  # newer than tokens'
        return {u.key: person(u) for u in users if u.name or u.email}

    def audit_csv(self, ctx: AdminContext, query: AuditQuery) -> str:
        from store.audit_log import AuditFilters

        self.check(ctx, "audit.export")
        query = replace(query, actor=_actor_key(query.actor, self._directory()))
        filters = AuditFilters(
            since=query.since,
            until=query.until,
            actor=query.actor or None,
            type=query.type or None,
            text=query.text or None,
        )
        record_action(self._audit, ctx, ADMIN_AUDIT_EXPORTED, None, details=_describe(query))
        return self._log.export_csv(filters)

    def active_sessions(self, ctx: AdminContext) -> list[Session]:
        self.check(ctx, "sessions.list")
        return self._sessions.list_active(self._clock())

    def revoke_session(self, ctx: AdminContext, handle: str) -> bool:
        self.check(ctx, "sessions.revoke")
        ended = self._sessions.revoke(handle)
        record_action(
            self._audit, ctx, ADMIN_SESSION_REVOKED, handle[:20], details={"ended": int(ended)}
        )
        return ended

    def revoke_user(self, ctx: AdminContext, user_key: str) -> UserRevoked:
        """End every session of the user and revoke their API tokens: all their access, now."""
        self.check(ctx, "sessions.revoke_user")
        ended = self._sessions.revoke_user(user_key)
        record_action(self._audit, ctx, ADMIN_SESSION_REVOKED, user_key, details={"ended": ended})
        revoked = self._tokens.revoke_owned(user_key, ctx.user.key) if self._tokens else []
        for token in revoked:
            details = {"name": token.name, "owner": user_key}
            record_action(self._audit, ctx, TOKEN_REVOKED, token.id, details=details)
        return UserRevoked(sessions=ended, tokens=len(revoked))


def _actor_key(wanted: str | None, directory: dict[str, str]) -> str | None:
    """The user filter: the key of the one known user whose name or e-mail contains `wanted`,
    else `wanted` itself, matched against keys (people know names; records keep keys)."""
    if not wanted:
        return wanted
    needle = wanted.casefold()
    matches = [key for key, name in directory.items() if needle in name.casefold()]
    return matches[0] if len(matches) == 1 else wanted


def _describe(query: AuditQuery) -> dict[str, Any]:
    return {
        "since": query.since.isoformat() if query.since else None,
        "until": query.until.isoformat() if query.until else None,
        "actor": query.actor,
        "type": query.type,
        "text": query.text,
        "page": query.page,
    }


def parse_date(value: str | None) -> datetime | None:
    """An ISO date or date-time from a filter box; naive values are UTC, like the table."""
    value = (value or "").strip()
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
