"""Server-side session lifecycle: start at login, resolve from the cookie on each request, end at logout.

Idle and absolute expiry are checked here against the injected clock on every request, so a copied
cookie stops working when the server says so, not when the browser forgets it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from auth.session_cookie import SessionCookie, new_session_id
from core.identity import User
from core.sessions import Session, SessionStore


class SessionManager:
    def __init__(
        self,
        store: SessionStore,
        cookie: SessionCookie,
        *,
        idle: timedelta,
        absolute: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.cookie = cookie
        self._idle = idle
        self._absolute = absolute
        self._clock = clock
        # Refresh last_seen at most this often: one store write per minute, not per request.
        self._touch_every = min(timedelta(seconds=60), idle / 60)

    def start(
        self,
        user: User,
        *,
        ip: str | None,
        user_agent: str | None,
        idp_session_id: str | None,
        id_token: str | None,
    ) -> Session:
        """A new session with a fresh random id (never one the browser brought)."""
        now = self._clock()
        session = Session(
            id=new_session_id(),
            user=user,
            created_at=now,
            last_seen=now,
            idle_expires_at=now + self._idle,
            absolute_expires_at=now + self._absolute,
            ip=ip,
            user_agent=(user_agent or "")[:256] or None,
            idp_session_id=idp_session_id,
            id_token=id_token,
        )
        self.store.create(session)
        return session

    def resolve(self, cookie_value: str | None) -> Session | None:
        """The live session the cookie names; None for a missing, tampered, revoked or expired one."""
        session_id = self.cookie.unsign(cookie_value)
        if session_id is None:
            return None
        session = self.store.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if session.expired(now):
            self.store.revoke(session_id)
            return None
        if now - session.last_seen >= self._touch_every:
            idle_expires_at = min(now + self._idle, session.absolute_expires_at)
            self.store.touch(session_id, now, idle_expires_at)
        return session

    def end(self, session_id: str) -> bool:
        return self.store.revoke(session_id)
