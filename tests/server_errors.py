"""An ASGI wrapper for test servers that remembers every internal server error the app answered.

Fixtures that serve the whole app wrap it with this and fail the test at teardown if any request
got a 500 or an exception escaped: no test passes while the server broke somewhere behind it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServerErrorWatch:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.errors: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = f"{scope['method']} {scope['path']}"

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 500:
                self.errors.append(f"500 from {where}")
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__} escaped from {where}")
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.app, name)  # e.g. `.state`, `.routes` for tests that look inside
