"""Per-address HTTP limits in front of the auth gate: logins, requests not signed in, failed tokens.

Order (outermost first): RequestId -> ClientAddress -> ... -> RateLimit -> CredentialRefusal ->
auth gate -> app. Running before the gate, it does not yet know the caller, so it counts by what the
request carries and what the gate concludes:

- a login path counts against the login limit on the way in, so a login flood never reaches the IdP;
- a request with no credential (no session cookie, no Authorization header) cannot be signed in: it
  counts against the anonymous limit on the way in, and past it gets 429 without reaching the gate;
- a request with a credential goes to the gate; only if the gate identifies no user (a 401, a login
  page, a public route) is it counted, when its response starts, and an over-limit response is
  replaced by the 429 before any byte leaves. A valid session is never counted, so a flood from the
  same address (NAT) or another one never slows it;
- a Bearer credential the gate refuses with 401 also counts against the failed-token limit; past
  it, every Bearer request from the address gets 429 before the gate looks any token up.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.app_path import app_path
from core.blocking_io import run_blocking
from core.request_facts import facts_of
from guards.rate_limits import Decision, Limited, RateLimiter
from guards.refusals import refusal


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        session_cookie: str,
        login_paths: tuple[str, ...] = ("/login",),
        exempt_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.session_cookie = session_cookie
        self.login_paths = login_paths
        # Health probes: instant, and they must answer for this process even when Redis is down.
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = app_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        ip = facts_of(scope).client_ip or "unknown"
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        bearer = authorization.partition(" ")[0].lower() == "bearer"
        signed = self.session_cookie in cookie_parser(headers.get("cookie", ""))
        checks: list[Callable[[str], Decision]] = []
        if any(path == p or path.startswith(p + "/") for p in self.login_paths):
            checks.append(self.limiter.hit_login)
        if bearer:
            checks.append(self.limiter.check_failed_tokens)  # before the gate's token lookup
        if not (authorization or signed):
            checks.append(self.limiter.hit_unauthenticated)
        for check in checks:
            # Redis or memory; either may audit a refusal (SQL), so never on the event loop.
            decision = await run_blocking(check, ip)
            if isinstance(decision, Limited):
                await _too_many(decision)(scope, receive, send)
                return
        if not (authorization or signed):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._judging_send(scope, receive, send, ip, bearer))

    def _judging_send(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ip: str,
        bearer: bool,
    ) -> Send:
        """Count a credential the gate did not accept when its response starts; 429 past a limit."""
        refused = False

        async def judging_send(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and facts_of(scope).user is None:
                checks = [self.limiter.hit_unauthenticated]
                if bearer and message["status"] == 401:
                    checks.append(self.limiter.hit_failed_token)
                for check in checks:
                    decision = await run_blocking(check, ip)
                    if isinstance(decision, Limited) and not refused:
                        refused = True
                        await _too_many(decision)(scope, receive, send)
            if not refused:
                await send(message)

        return judging_send


def _too_many(decision: Limited) -> ASGIApp:
    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"Retry-After": str(decision.retry_after), "Cache-Control": "no-store"}
        await refusal(scope, 429, decision.message, headers)(scope, receive, send)

    return respond
