"""Server-side sessions: the cookie holds only a signed random id; everything else lives here."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from core.identity import User


@dataclass(frozen=True)
class Session:
    id: str
    user: User
    created_at: datetime
    last_seen: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    idp_session_id: str | None = None  # the IdP's `sid`, for back-channel logout
    id_token: str | None = None  # kept server-side for `id_token_hint` at logout

    def expired(self, now: datetime) -> bool:
        return now >= self.idle_expires_at or now >= self.absolute_expires_at


class SessionStore(Protocol):
    """Implemented in memory (tests, single process) and in SQL / Redis (replicas)."""

    def create(self, session: Session) -> None: ...

    def get(self, session_id: str) -> Session | None: ...

    def touch(self, session_id: str, last_seen: datetime, idle_expires_at: datetime) -> None: ...

    def revoke(self, session_id: str) -> bool: ...

    def revoke_user(self, user_key: str) -> int: ...

    def revoke_idp_session(self, issuer: str, idp_session_id: str) -> int: ...

    def list_active(self, now: datetime, user_key: str | None = None) -> list[Session]: ...


HANDLE_PREFIX = "sha256:"


def session_handle(session_id: str) -> str:
    """What listings show instead of a session id: enough to revoke it, useless as a cookie."""
    return HANDLE_PREFIX + hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class MemorySessionStore:
    """One-process store; fine for a single replica and for tests. Same handle rules as SQL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.id] = session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def touch(self, session_id: str, last_seen: datetime, idle_expires_at: datetime) -> None:
        with self._lock:
            current = self._sessions.get(session_id)
            if current is not None:
                self._sessions[session_id] = replace(
                    current, last_seen=last_seen, idle_expires_at=idle_expires_at
                )

    def revoke(self, session_id: str) -> bool:
        """End one session, given its id (logout) or its handle from list_active() (admin)."""
        if session_id.startswith(HANDLE_PREFIX):
            return self._revoke_matching(lambda s: session_handle(s.id) == session_id) > 0
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def revoke_user(self, user_key: str) -> int:
        return self._revoke_matching(lambda s: s.user.key == user_key)

    def revoke_idp_session(self, issuer: str, idp_session_id: str) -> int:
        return self._revoke_matching(
            lambda s: s.user.issuer == issuer and s.idp_session_id == idp_session_id
        )

    def list_active(self, now: datetime, user_key: str | None = None) -> list[Session]:
        with self._lock:
            sessions = list(self._sessions.values())
        return sorted(
            (
                replace(s, id=session_handle(s.id))
                for s in sessions
                if not s.expired(now) and (user_key is None or s.user.key == user_key)
            ),
            key=lambda s: s.created_at,
            reverse=True,
        )

    def _revoke_matching(self, predicate) -> int:
        with self._lock:
            doomed = [sid for sid, s in self._sessions.items() if predicate(s)]
            for sid in doomed:
                del self._sessions[sid]
            return len(doomed)
