"""An outage of Redis or of the database answered as 503 "try again shortly", never as a 500.

With `[limits] storage = "redis://..."` the rate limits, the per-user locks and the short-lived
login state live in Redis; sessions, history and the audit trail live in the database. The
middlewares and routes that use them fail closed when they are unreachable (nothing is let through
unchecked); this middleware turns that into a clear, retryable answer with one log line. It must
wrap the outermost user of either, the rate limits (see app_factory.middleware_stack).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.shared_state import SharedStateUnavailable
from core.store_outage import StoreUnreachable
from guards.refusals import close_websocket, log_refusal, refusal

RETRY_AFTER_SECONDS = 5
SHARED_STATE_DOWN = (
    "The service is briefly unavailable (shared state unreachable). Try again in a few seconds."
)
DATABASE_DOWN = (
    "The service cannot reach its database right now; nothing was changed. "
    "Try again in a few seconds."
)


class OutageMiddleware:
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
        except (SharedStateUnavailable, StoreUnreachable) as exc:
            if started:  # part of a response went out: nothing clean is left to send
                raise
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"  # what is down
            if scope["type"] == "websocket":
                log_refusal(scope, 503, reason)
                await close_websocket(send)
                return
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
            message = DATABASE_DOWN if isinstance(exc, StoreUnreachable) else SHARED_STATE_DOWN
            await refusal(scope, 503, message, headers, reason=reason)(scope, receive, send)
