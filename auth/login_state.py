"""OIDC login state (state, nonce, PKCE verifier, where to go next) between /login and the callback.

Kept server-side behind a small interface so the callback may land on another replica once a shared
store (SQL or Redis) implements it; the browser only holds a signed cookie naming its own `state`,
which binds the flow to that browser. Each state is consumed once, so a replayed callback fails.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    next_path: str
    expires_at: datetime


class LoginStateStore(Protocol):
    def put(self, login: LoginState) -> None: ...

    def pop(self, state: str, now: datetime) -> LoginState | None:
        """Remove and return the unexpired login for `state`; None if unknown, used or expired."""
        ...


class MemoryLoginStateStore:
    """One-process store, bounded: when full, the oldest pending login is dropped."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._logins: dict[str, LoginState] = {}
        self._max_entries = max_entries

    def put(self, login: LoginState) -> None:
        with self._lock:
            # The TTL is fixed, so the oldest entry is also the first to expire.
            while len(self._logins) >= self._max_entries:
                self._logins.pop(next(iter(self._logins)))
            self._logins[login.state] = login

    def pop(self, state: str, now: datetime) -> LoginState | None:
        with self._lock:
            login = self._logins.pop(state, None)
        if login is None or now >= login.expires_at:
            return None
        return login
