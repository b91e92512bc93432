"""Turn a Gradio request into the server-side facts a handler may trust: user, IP, request id, locale."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.request_facts import current_user, request_state_of
from webui.chat_service import TurnContext
from webui.i18n import pick_locale

request_user = current_user  # the user the auth gate attached; never anything the client sent


def request_state(request: Any) -> dict[str, Any]:
    state = request_state_of(request)
    return state if isinstance(state, dict) else dict(vars(state).get("_state", {}))


def turn_context(request: gr.Request) -> TurnContext:
    state = request_state(request)
    headers = getattr(request, "headers", None) or {}
    return TurnContext(
        user=current_user(request),
        ip=state.get("client_ip"),
        request_id=state.get("request_id"),
        locale=pick_locale(headers.get("accept-language")),
    )
