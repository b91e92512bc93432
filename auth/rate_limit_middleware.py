"""Per-IP HTTP limits: login attempts and unauthenticated requests -> 429 with Retry-After.

Expected order (outermost first): ClientAddress -> IPAllowlist -> BodyLimit -> RateLimit(login)
-> auth gate -> ... With `auth_gate_runs_first=True` (the default) this middleware sits *inside*
the gate and reads scope["state"]["user"] directly. Placed *outside* the gate, pass False: the
anonymous limit is then decided when the response starts (after the gate has set the user), and an
over-limit response is replaced by the 429 before any byte leaves. Login paths are counted on the way
in either way, so a login flood never reaches the IdP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.client_ip import client_ip
from auth.ip_allowlist import app_path
from auth.rate_limits import Decision, Limited, RateLimiter
from auth.refusals import refusal


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        login_paths: tuple[str, ...] = ("/login",),
        auth_gate_runs_first: bool = True,
        exempt_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.login_paths = login_paths
        # Health probes: instant, and they must answer for this process even when Redis is down.
        self.exempt_paths = frozenset(exempt_paths)
        self.auth_gate_runs_first = auth_gate_runs_first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = app_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        ip = client_ip(scope) or "unknown"
        if any(path == p or path.startswith(p + "/") for p in self.login_paths):
            decision = await self._run(self.limiter.hit_login, ip)
            if isinstance(decision, Limited):
                await _too_many(decision)(scope, receive, send)
                return
        if self.auth_gate_runs_first:
            if state.get("user") is None:
                decision = await self._run(self.limiter.hit_unauthenticated, ip)
                if isinstance(decision, Limited):
                    await _too_many(decision)(scope, receive, send)
                    return
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._deciding_send(scope, receive, send, state, ip))

    def _deciding_send(
        self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any], ip: str
    ) -> Send:
        refused = False

        async def deciding_send(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and state.get("user") is None:
                decision = await self._run(self.limiter.hit_unauthenticated, ip)
                if isinstance(decision, Limited):
                    refused = True
                    await _too_many(decision)(scope, receive, send)
                    return
            if not refused:
                await send(message)

        return deciding_send

    async def _run(self, hit: Callable[[str], Decision], ip: str) -> Decision:
        if self.limiter.blocking:
            return await anyio.to_thread.run_sync(hit, ip)
        return hit(ip)


def _too_many(decision: Limited) -> ASGIApp:
    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"Retry-After": str(decision.retry_after)}
        await refusal(scope, 429, decision.message, headers)(scope, receive, send)

    return respond
