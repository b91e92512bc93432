"""Turn a Gradio request into the server-side facts a turn may trust: user, IP, request id, locale."""

from __future__ import annotations

import gradio as gr

from core.request_facts import current_user, facts_of
from webui.chat_service import TurnContext
from webui.i18n import request_locale


def turn_context(request: gr.Request) -> TurnContext:
    facts = facts_of(request)
    return TurnContext(
        user=current_user(request),  # the user the auth gate attached, never one the client named
        ip=facts.client_ip,
        request_id=facts.request_id,
        locale=request_locale(request),
    )
