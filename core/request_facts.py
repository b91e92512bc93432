"""What the middlewares established about a request, written and read in one place.

The middlewares write each fact into the ASGI scope's "state" dict (the one Starlette's
`request.state` shows) with the setters below; everything else reads them with `facts_of`, from a
scope, a Starlette Request or WebSocket, or a gr.Request (live, or pickled by Gradio's queue).
FastAPI routes take the signed-in user as a `CurrentUser` parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.types import Scope

from core.identity import User

# The keys in scope["state"]; each is written only by the setter named beside it.
_REQUEST_ID = "request_id"  # set_request_id: RequestIdMiddleware
_ARRIVED = "arrived"  # set_request_id: time.monotonic() as the request reached the server
_CLIENT_IP = "client_ip"  # set_client: ClientAddressMiddleware
_PEER_IP = "peer_ip"  # set_client
_USER = "user"  # set_caller: the route gate
_SESSION_ID = "session_id"  # set_caller
_CSRF = "csrf_token"  # set_caller


@dataclass(frozen=True)
class RequestFacts:
    user: User | None = None  # the server-side identity; never anything the client sent
    client_ip: str | None = None  # the real client (guards.client_ip), else the socket peer
    peer_ip: str | None = None  # the socket peer as it connected (a proxy, behind one)
    request_id: str | None = None
    session_id: str | None = None  # the cookie session's id; None for bearer tokens
    csrf_token: str | None = None  # what a logout form must post back
    # When the request reached this process (time.monotonic()): orders one tab's clicks as sent.
    arrived: float | None = None

    @property
    def user_key(self) -> str | None:
        """The caller's User.key, as audit records name their actor; None if not signed in."""
        return self.user.key if self.user else None


def facts_of(request: Any) -> RequestFacts:
    """The facts of a scope, a Starlette Request/WebSocket or a gr.Request; absent ones are None."""
    scope = _scope_of(request)
    state = _state_of(request, scope)
    peer = (scope or {}).get("client")
    peer_host = peer[0] if peer else None
    user = state.get(_USER)
    return RequestFacts(
        user=user if isinstance(user, User) else None,
        client_ip=_text(state.get(_CLIENT_IP)) or peer_host,
        peer_ip=_text(state.get(_PEER_IP)) or peer_host,
        request_id=_text(state.get(_REQUEST_ID)),
        session_id=_text(state.get(_SESSION_ID)),
        csrf_token=_text(state.get(_CSRF)),
        arrived=_number(state.get(_ARRIVED)),
    )


def set_request_id(scope: Scope, request_id: str, arrived: float | None = None) -> None:
    state = _state(scope)
    state[_REQUEST_ID] = request_id
    if arrived is not None:
        state[_ARRIVED] = arrived


def set_client(scope: Scope, client_ip: str | None, peer_ip: str | None) -> None:
    state = _state(scope)
    state[_CLIENT_IP], state[_PEER_IP] = client_ip, peer_ip


def set_caller(
    scope: Scope,
    user: User | None,
    session_id: str | None = None,
    csrf_token: str | None = None,
) -> None:
    """The gate's decision about who is calling; replaces anything set before (None: not set)."""
    state = _state(scope)
    for key, value in ((_USER, user), (_SESSION_ID, session_id), (_CSRF, csrf_token)):
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value


class NotAuthenticated(Exception):
    """No server-side identity on this request; the route gate should have refused it already."""


def current_user(request: Any) -> User:
    """The logged-in user of a gr.Request or Starlette request; raises NotAuthenticated if none."""
    user = facts_of(request).user
    if user is None:
        raise NotAuthenticated()
    return user


def csrf_token(request: Any) -> str:
    """The token a logout form must post back as `csrf_token` (or send as X-CSRF-Token)."""
    token = facts_of(request).csrf_token
    if token is None:
        raise NotAuthenticated()
    return token


async def _current_user(connection: HTTPConnection) -> User:
    # async: FastAPI runs a plain `def` dependency in a worker thread, for no work at all here.
    return current_user(connection)


CurrentUser = Annotated[User, Depends(_current_user)]


async def not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    """The app's answer when a route needs a user and the request has none."""
    return JSONResponse({"error": "Log in first."}, status_code=401)


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


def _scope_of(request: Any) -> Scope | None:
    if isinstance(request, dict):
        return request
    if isinstance(request, HTTPConnection):
        return request.scope
    # A gr.Request: its `.request` is the FastAPI request of queue/join, None once pickled.
    # vars() avoids gr.Request.__getattr__, which round-trips dicts through JSON.
    inner = vars(request).get("request")
    return inner.scope if isinstance(inner, HTTPConnection) else None


def _state_of(request: Any, scope: Scope | None) -> dict[str, Any]:
    if scope is not None:
        state = scope.get("state")
    else:
        # Once Gradio has pickled a gr.Request, the scope state survives as a Starlette State in
        # `.state`, or as a dict in `.kwargs["request_state"]` (depending on the path).
        attributes = vars(request)
        state = attributes.get("state")
        if state is None:
            state = (attributes.get("kwargs") or {}).get("request_state")
        elif not isinstance(state, dict):
            state = vars(state).get("_state")
    return state if isinstance(state, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
