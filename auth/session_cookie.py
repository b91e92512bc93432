"""The session cookie: a random opaque id signed with itsdangerous, nothing else.

Signing means a guessed or altered id is refused before any store lookup; key rotation signs with the
newest key and accepts the older ones. The per-session CSRF token is a second signature of the same id
(different salt), so it needs no storage and dies with the session.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence

from itsdangerous import BadSignature, Signer
from starlette.responses import Response

from auth.settings import SessionSettings

log = logging.getLogger("chat.auth")

_SESSION_SALT = "chat.session.v1"
_CSRF_SALT = "chat.csrf.v1"
_LOGIN_SALT = "chat.login.v1"


def new_session_id() -> str:
    """256 bits from the OS CSPRNG; a fresh one at every login (no fixation)."""
    return secrets.token_urlsafe(32)


def session_keys(session: SessionSettings, *, production: bool) -> list[str]:
    """Configured keys (newest first); in development without keys, one ephemeral random key."""
    keys = [key.get_secret_value() for key in session.secret_keys]
    if keys:
        return keys
    if production:
        raise ValueError(
            "session.secret_keys is required in production (CHAT_SESSION__SECRET_KEYS)"
        )
    log.warning(
        "no session keys configured: using an ephemeral random key; "
        "everyone is logged out when the process restarts"
    )
    return [secrets.token_urlsafe(48)]


class SessionCookie:
    """Signs, reads, sets and clears the session cookie with the attributes the deployment needs."""

    def __init__(
        self, keys: Sequence[str], *, https: bool, name: str, max_age_seconds: int
    ) -> None:
        if not keys:
            raise ValueError("at least one session key is required")
        # itsdangerous signs with the last key and tries all; our settings list the newest first.
        ordered = [key.encode() for key in reversed(keys)]
        self._signer = Signer(ordered, salt=_SESSION_SALT, digest_method=hashlib.sha256)
        self._csrf = Signer(ordered, salt=_CSRF_SALT, digest_method=hashlib.sha256)
        self._login = Signer(ordered, salt=_LOGIN_SALT, digest_method=hashlib.sha256)
        self.secure = https
        # "__Host-" makes browsers refuse the cookie unless Secure, Path=/ and no Domain.
        self.name = f"__Host-{name}" if https else name
        self.login_name = f"{self.name}_login"
        self.max_age_seconds = max_age_seconds

    def sign(self, session_id: str) -> str:
        return self._signer.sign(session_id.encode()).decode()

    def unsign(self, value: str | None) -> str | None:
        """The session id, or None when the cookie is absent, tampered or signed with an unknown key."""
        if not value or len(value) > 512:
            return None
        try:
            return self._signer.unsign(value.encode()).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    def set(self, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.name,
            self.sign(session_id),
            max_age=self.max_age_seconds,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def set_login_state(self, response: Response, state: str, max_age_seconds: int) -> None:
        """Bind an OIDC login in progress to this browser: the callback must bring the same state."""
        value = self._login.sign(state.encode()).decode()
        response.set_cookie(
            self.login_name,
            value,
            max_age=max_age_seconds,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",  # sent on the IdP's top-level redirect back to us
        )

    def login_state(self, value: str | None) -> str | None:
        if not value or len(value) > 512:
            return None
        try:
            return self._login.unsign(value.encode()).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    def clear_login_state(self, response: Response) -> None:
        response.delete_cookie(
            self.login_name, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def csrf_token(self, session_id: str) -> str:
        return self._csrf.get_signature(session_id.encode()).decode()

    def check_csrf(self, session_id: str, token: str | None) -> bool:
        if not token or len(token) > 256:
            return False
        return self._csrf.verify_signature(session_id.encode(), token.encode())
