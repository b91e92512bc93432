"""Personal API tokens on requests: `Authorization: Bearer chat_pat_...` acts as the token's user.

A RequestAuthenticator for the route gate. A bad token is not "anonymous": it raises CredentialRefused,
which CredentialRefusalMiddleware (just outside the gate) turns into a 401/403 JSON answer that says
what to do. Tokens are read from the Authorization header only, never from a query string.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NoReturn, Protocol

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core.api_tokens import TOKEN_PREFIX, ApiToken
from core.audit import TOKEN_REFUSED, AuditEvent, AuditSink
from core.blocking_io import run_blocking
from core.identity import User
from core.request_facts import facts_of
from guards.client_ip import parse_ip

log = logging.getLogger("chat.auth")

_MESSAGES = {
    "unknown": "This API token is not valid. Create a new one in the API tokens tab.",
    "revoked": "This API token was revoked. Create a new one in the API tokens tab.",
    "expired": "This API token has expired. Create a new one in the API tokens tab.",
    "address_not_allowed": "This API token may not be used from your network address.",
}


class CredentialRefused(Exception):
    """A bearer credential was presented and is not acceptable; `reason` is a short code."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


class CredentialRefusalMiddleware:
    """Answer CredentialRefused from the gate's authenticators; place it just outside the gate."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except CredentialRefused as refused:  # raised before the gate sends anything
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = JSONResponse(
                {"error": "invalid_token", "reason": refused.reason, "message": refused.message},
                refused.status,
                headers={"Cache-Control": "no-store"},
            )
            if refused.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            await response(scope, receive, send)


def bearer_credential(connection: HTTPConnection) -> str | None:
    """The credential of an `Authorization: Bearer` header, or None."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


class TokenLookup(Protocol):
    """What the authenticator needs from store.api_tokens.ApiTokenStore."""

    def find(self, secret: str) -> ApiToken | None: ...

    def mark_used(self, token_id: str, when: datetime, ip: str | None) -> None: ...


class RefusalRecorder:
    """Logs every refusal, audits each (reason, token, address) at most once per window: a script
    retrying with a dead token should not fill the audit trail."""

    def __init__(self, audit: AuditSink, clock: Callable[[], datetime], window_seconds: int = 60):
        self._audit = audit
        self._clock = clock
        self._window = timedelta(seconds=window_seconds)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str | None, str | None], datetime] = {}

    async def record(
        self, scope: Scope, reason: str, actor: str | None = None, target: str | None = None
    ) -> None:
        facts = facts_of(scope)
        ip = facts.client_ip
        log.warning("bearer credential refused: %s", reason, extra={"reason": reason, "ip": ip})
        now = self._clock()
        key = (reason, target, ip)
        with self._lock:
            if len(self._last) > 10_000:
                self._last = {k: v for k, v in self._last.items() if now - v < self._window}
            last = self._last.get(key)
            if last is not None and now - last < self._window:
                return
            self._last[key] = now
        event = AuditEvent(
            TOKEN_REFUSED,
            actor=actor,
            ip=ip,
            request_id=facts.request_id,
            target=target,
            outcome=reason,
            details={"path": scope.get("path", "")[:200]},
        )
        await run_blocking(self._audit.record, event)


class PersonalTokenAuthenticator:
    """Accepts `chat_pat_` bearer tokens. Other bearer credentials are refused as unknown, except
    JWT-shaped ones when a service-account authenticator follows (jwts_handled_elsewhere=True)."""

    def __init__(
        self,
        tokens: TokenLookup,
        audit: AuditSink,
        clock: Callable[[], datetime],
        touch_interval: timedelta = timedelta(seconds=60),
        jwts_handled_elsewhere: bool = False,
    ) -> None:
        self._tokens = tokens
        self._pass_jwts = jwts_handled_elsewhere
        self._clock = clock
        self._touch_interval = touch_interval
        self._refusals = RefusalRecorder(audit, clock)

    async def authenticate(self, connection: HTTPConnection) -> User | None:
        credential = bearer_credential(connection)
        if credential is None:
            return None
        scope = connection.scope
        if not credential.startswith(TOKEN_PREFIX):
            if self._pass_jwts and looks_like_jwt(credential):
                return None  # the service-account authenticator's
            await self._refuse(scope, "unknown")
        token = await run_blocking(self._tokens.find, credential)
        if token is None:
            await self._refuse(scope, "unknown")
        now = self._clock()
        owner = token.owner.key
        if token.revoked_at is not None:
            await self._refuse(scope, "revoked", owner, token.id)
        if now >= token.expires_at:
            await self._refuse(scope, "expired", owner, token.id)
        ip = facts_of(scope).client_ip
        if token.source_cidrs and not address_in(ip, token.source_cidrs):
            await self._refuse(scope, "address_not_allowed", owner, token.id, status=403)
        if token.last_used_at is None or now - token.last_used_at >= self._touch_interval:
            await run_blocking(self._tokens.mark_used, token.id, now, ip)
        return token.owner

    async def _refuse(
        self,
        scope: Scope,
        reason: str,
        actor: str | None = None,
        token_id: str | None = None,
        status: int = 401,
    ) -> NoReturn:
        await self._refusals.record(scope, reason, actor, token_id)
        raise CredentialRefused(reason, _MESSAGES[reason], status)


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


def address_in(address: str | None, cidrs: tuple[str, ...]) -> bool:
    parsed = parse_ip(address) if address else None
    return parsed is not None and any(
        parsed in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
    )
