"""The route gate: one ASGI middleware in front of the whole app that decides who is calling.

Every path needs a live server-side session except an explicit, exact list of public (path, method)s. It covers
all of Gradio's routes, including those Gradio's own `auth_dependency` leaves open. On success it records
the caller (core.request_facts.set_caller) for handlers; auth.gradio_doors then ties Gradio's session
hashes and event ids to that user. The session lookup runs off the event loop (core.blocking_io).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import quote

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.session_manager import SessionManager
from core.app_path import app_path
from core.blocking_io import run_blocking
from core.identity import User
from core.request_facts import set_caller
from guards.refusals import log_refusal

log = logging.getLogger("chat.auth")


class RequestAuthenticator(Protocol):
    """A second way in besides the cookie (API tokens, service-account JWTs): a User or None."""

    async def authenticate(self, connection: HTTPConnection) -> User | None: ...


def wants_html(connection: HTTPConnection) -> bool:
    """A person navigating (redirect to login) rather than a script or XHR (401 JSON)."""
    if connection.scope.get("method") not in ("GET", "HEAD"):
        return False
    mode = connection.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in connection.headers.get("accept", "")


# Gradio's build files (hashed names, the same for everyone) may be cached; nothing else that needs
# a login may be: a signed-out browser's back button or a shared machine must not show it again.
CACHEABLE_PREFIXES = ("/assets/", "/static/", "/favicon.ico")


def _no_store(send: Send) -> Send:
    """Add `Cache-Control: no-store` to a response that does not choose its own caching."""

    async def send_private(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return send_private


class AuthGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: SessionManager,
        public_routes: Mapping[str, Iterable[str]],
        login_url: str,
        authenticators: Iterable[RequestAuthenticator] = (),
    ) -> None:
        self.app = app
        self._sessions = sessions
        self._public = {path: frozenset(methods) for path, methods in public_routes.items()}
        self._login_url = login_url
        self._authenticators = tuple(authenticators)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        set_caller(scope, None)  # only this gate names the caller
        connection = HTTPConnection(scope)
        cookie = connection.cookies.get(self._sessions.cookie.name)
        session = await run_blocking(self._sessions.resolve, cookie) if cookie else None
        user = session.user if session else None
        if session is not None:
            csrf = self._sessions.cookie.csrf_token(session.id)
            set_caller(scope, user, session.id, csrf)
        else:
            for authenticator in self._authenticators:
                user = await authenticator.authenticate(connection)
                if user is not None:
                    break
            set_caller(scope, user)
        path = app_path(scope)
        # Exact path and method: Gradio also serves POST /login and GET /logout, which stay gated.
        if scope["type"] == "http" and scope["method"] in self._public.get(path, ()):
            await self.app(scope, receive, send)
            return
        if user is None:
            await self._refuse_anonymous(connection, path, receive, send)
            return
        if scope["type"] == "http" and not path.startswith(CACHEABLE_PREFIXES):
            send = _no_store(send)
        await self.app(scope, receive, send)

    async def _refuse_anonymous(
        self, connection: HTTPConnection, path: str, receive: Receive, send: Send
    ) -> None:
        scope = connection.scope
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response
        if wants_html(connection):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            response = RedirectResponse(f"{self._login_url}?next={quote(target, safe='')}", 302)
        else:
            log_refusal(scope, 401, "not signed in")
            response = JSONResponse(
                {"error": "not_authenticated", "message": "Log in first (GET /login)."}, 401
            )
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)
