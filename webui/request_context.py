"""Turn a Gradio request into the server-side facts a handler may trust: user, IP, request id, locale."""

from __future__ import annotations

import gradio as gr

from auth.identity import User
from webui.chat_service import TurnContext
from webui.i18n import pick_locale


class NotAuthenticated(Exception):
    """No server-side identity on the request; the route gate should have refused it already."""


def request_user(request: gr.Request) -> User:
    """The user the auth gate attached to the request scope; never anything the client sent."""
    raw = getattr(request, "request", None)
    state = raw.scope.get("state", {}) if raw is not None else {}
    user = state.get("user")
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def turn_context(request: gr.Request) -> TurnContext:
    raw = request.request
    state = raw.scope.get("state", {})
    client = raw.scope.get("client")
    return TurnContext(
        user=request_user(request),
        ip=state.get("client_ip") or (client[0] if client else None),
        request_id=state.get("request_id"),
        locale=pick_locale(raw.headers.get("accept-language")),
    )
