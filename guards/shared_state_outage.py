"""A Redis outage answered as 503 "try again shortly", never as a 500 with a stack trace.

With `[limits] storage = "redis://..."` the rate limits, the per-user locks and the short-lived
login state live in Redis, and the middlewares that use them run before any route. When Redis is
unreachable they fail closed (nothing is let through unchecked); this middleware turns that into
a clear, retryable answer. It must wrap the outermost Redis user, the rate limits (see
app_factory.middleware_stack).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.shared_state import SharedStateUnavailable
from guards.refusals import close_websocket, refusal

log = logging.getLogger("chat.shared_state")

RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "The service is briefly unavailable (shared state unreachable). Try again in a few seconds."
)


class SharedStateOutageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except SharedStateUnavailable as exc:
            if started:  # part of a response went out: nothing clean is left to send
                raise
            log.error("shared state unreachable", extra={"error": str(exc)})
            if scope["type"] == "websocket":
                await close_websocket(send)
                return
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
            await refusal(scope, 503, MESSAGE, headers)(scope, receive, send)
