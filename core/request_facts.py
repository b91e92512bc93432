"""The accessor handlers use to learn who is calling: the User the route gate put in the scope."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from core.identity import User


class NotAuthenticated(Exception):
    """No server-side identity on this request; the route gate should have refused it already."""


def request_state_of(request: Any) -> Any:
    """The scope state the middlewares filled in (user, client_ip, request_id, csrf_token)."""
    return _state_of(request)


def _state_of(request: Any) -> Any:
    if isinstance(request, HTTPConnection):  # a Starlette / FastAPI request
        return request.scope.get("state", {})
    # A gr.Request: its `.request` is the FastAPI request of queue/join. Once Gradio has pickled it,
    # the scope state survives in `.state` or `.kwargs["request_state"]` (depending on the path).
    # vars() avoids gr.Request.__getattr__, which round-trips dicts through JSON.
    attributes = vars(request)
    inner = attributes.get("request")
    if inner is not None:
        return inner.scope.get("state", {})
    if attributes.get("state") is not None:
        return attributes["state"]
    return (attributes.get("kwargs") or {}).get("request_state")


def current_user(request: Any) -> User:
    """The logged-in user of a `gr.Request` or Starlette `Request`; raises NotAuthenticated if none."""
    state = _state_of(request)
    user = state.get("user") if isinstance(state, dict) else getattr(state, "user", None)
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def csrf_token(request: Any) -> str:
    """The token a logout form must post back as `csrf_token` (or send as X-CSRF-Token)."""
    state = _state_of(request)
    token = (
        state.get("csrf_token") if isinstance(state, dict) else getattr(state, "csrf_token", None)
    )
    if not isinstance(token, str):
        raise NotAuthenticated()
    return token
