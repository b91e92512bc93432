"""Creating, listing and revoking personal API tokens, with the checks and the audit records.

Tokens are managed from a browser session only: a leaked token must not be able to mint its own
successors. Admin scope needs an admin creating it; admin listing and revoking re-check role and IP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth.api_settings import ApiSettings
from core.api_tokens import ApiToken, NewToken
from core.audit import TOKEN_CREATED, TOKEN_REVOKED, AuditSink
from core.identity import User
from store.api_tokens import ApiTokenStore
from webui.caller_audit import admin_refusal, record_action, record_refusal
from webui.i18n import text

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
MAX_CIDRS = 20


class TokenRequestInvalid(ValueError):
    """Something the user typed is not acceptable; the message says what to change.

    `key` and `values` name the message in webui.i18n, so the tab can say it in the user's
    language; str() is the English text.
    """

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(text(key, "en", **values))
        self.key = key
        self.values = values

    def message(self, locale: str) -> str:
        return text(self.key, locale, **self.values)


class TokensRefused(PermissionError):
    """The caller may not do this (not an admin, from a token, or not from an admin address)."""


@dataclass(frozen=True)
class TokenContext:
    user: User
    ip: str | None = None
    request_id: str | None = None


class TokensService:
    def __init__(
        self,
        store: ApiTokenStore,
        audit: AuditSink,
        settings: ApiSettings,
        require_admin_ip: Callable[[str | None], None] = lambda ip: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._audit = audit
        self._settings = settings
        self._require_admin_ip = require_admin_ip
        self._clock = clock

    @property
    def settings(self) -> ApiSettings:
        return self._settings

    def now(self) -> datetime:
        return self._clock()

    def create(
        self,
        ctx: TokenContext,
        name: str,
        days: int,
        cidrs: str = "",
        admin_scope: bool = False,
    ) -> NewToken:
        """Issue a token for the caller; the secret in the result is shown once and never stored."""
        self._from_browser(ctx, "tokens.create")
        name = name.strip()
        if not _NAME.match(name):
            raise TokenRequestInvalid("bad_token_name")
        if not 1 <= days <= self._settings.token_max_days:
            raise TokenRequestInvalid("bad_token_days", max=self._settings.token_max_days)
        ranges = parse_cidrs(cidrs)
        if admin_scope:
            self._admin(ctx, "tokens.create_admin")
        mine = [
            t for t in self._store.list_tokens(ctx.user.key) if t.status(self._clock()) == "active"
        ]
        if any(t.name == name for t in mine):
            raise TokenRequestInvalid("duplicate_token")
        if len(mine) >= self._settings.max_tokens_per_user:
            raise TokenRequestInvalid("too_many_tokens")
        expires = self._clock() + timedelta(days=days)
        created = self._store.create(ctx.user, name, expires, ranges, admin_scope=admin_scope)
        self._record(
            ctx,
            TOKEN_CREATED,
            created.token,
            {"expires_at": expires.isoformat(), "source_cidrs": list(ranges), "admin": admin_scope},
        )
        return created

    def list_mine(self, ctx: TokenContext) -> list[ApiToken]:
        return self._store.list_tokens(ctx.user.key)

    def revoke_mine(self, ctx: TokenContext, token_id: str) -> bool:
        """Revoke one of the caller's tokens; another user's id behaves like a missing one."""
        self._from_browser(ctx, "tokens.revoke")
        revoked = self._store.revoke(token_id.strip(), by=ctx.user.key, owner_key=ctx.user.key)
        if revoked is not None:
            self._record(ctx, TOKEN_REVOKED, revoked, {"by_admin": False})
        return revoked is not None

    def list_all(self, ctx: TokenContext) -> list[ApiToken]:
        self._admin(ctx, "tokens.list_all")
        return self._store.list_tokens()

    def revoke_any(self, ctx: TokenContext, token_id: str) -> bool:
        self._admin(ctx, "tokens.revoke_any")
        revoked = self._store.revoke(token_id.strip(), by=ctx.user.key)
        if revoked is not None:
            self._record(ctx, TOKEN_REVOKED, revoked, {"by_admin": True})
        return revoked is not None

    def _from_browser(self, ctx: TokenContext, action: str) -> None:
        if ctx.user.via_token is not None:
            self._deny(ctx, action, "from_token")

    def _admin(self, ctx: TokenContext, action: str) -> None:
        reason = admin_refusal(ctx.user, ctx.ip, self._require_admin_ip)
        if reason is not None:
            self._deny(ctx, action, reason)

    def _deny(self, ctx: TokenContext, action: str, reason: str) -> None:
        record_refusal(self._audit, ctx, action, reason)
        raise TokensRefused(reason)

    def _record(self, ctx: TokenContext, kind: str, token: ApiToken, details: dict) -> None:
        details = {"name": token.name, "owner": token.owner.key, **details}
        record_action(self._audit, ctx, kind, token.id, details=details)


def parse_cidrs(text: str) -> tuple[str, ...]:
    """Comma- or space-separated addresses/ranges, normalised ("10.1.2.3" -> "10.1.2.3/32")."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if len(parts) > MAX_CIDRS:
        raise TokenRequestInvalid("too_many_ranges", max=MAX_CIDRS)
    ranges = []
    for part in parts:
        try:
            ranges.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise TokenRequestInvalid("bad_range", value=repr(part[:50])) from None
    return tuple(dict.fromkeys(ranges))
