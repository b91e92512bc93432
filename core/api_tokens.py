"""Personal API tokens as every layer sees them: the public prefix and the stored record (no secret).

The store issues and keeps them (store.api_tokens), the gate checks them (auth.bearer_tokens), the
tokens tab lists them (webui)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.identity import User

TOKEN_PREFIX = "chat_pat_"  # noqa: S105 - a public marker, not a secret


def looks_like_token(value: str) -> bool:
    """True for strings shaped like our tokens (prefix, url-safe body); says nothing of validity."""
    body = value[len(TOKEN_PREFIX) :]
    return (
        value.startswith(TOKEN_PREFIX)
        and 20 <= len(body) <= 100
        and all(c.isalnum() or c in "-_" for c in body)
    )


@dataclass(frozen=True)
class ApiToken:
    """A stored token without its secret; `id` is the handle shown in listings and used to revoke."""

    id: str
    name: str
    owner: User  # as at creation; is_admin is True only for an admin-scope token made by an admin
    created_at: datetime
    expires_at: datetime
    source_cidrs: tuple[str, ...] = ()
    last_used_at: datetime | None = None
    last_ip: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def admin_scope(self) -> bool:
        return self.owner.is_admin

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


@dataclass(frozen=True)
class NewToken:
    secret: str  # shown to the user once, never stored
    token: ApiToken
