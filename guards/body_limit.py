"""Maximum request body size, for declared (Content-Length) and streamed (chunked) bodies alike."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guards.refusals import log_refusal


class BodyTooLarge(HTTPException):
    """Raised from receive() when a streamed body passes the limit; an HTTPException, so any
    Starlette/FastAPI exception handler in between also answers 413 instead of 500."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


def _message(limit: int) -> str:
    return f"Request body too large: the limit is {limit} bytes. Send a shorter message or file."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            log_refusal(scope, 413, f"Content-Length {declared[:30]!r} over {self.max_bytes}")
            await self._too_large(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            log_refusal(scope, 413, f"body streamed past {self.max_bytes} bytes")
            if not started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": _message(self.max_bytes)}, status_code=413)
        # Close the connection: the rest of the body is never read.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
