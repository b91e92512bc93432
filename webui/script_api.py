"""Named API endpoints for scripts using gradio_client: same identity, limits and audit as the page."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import gradio as gr

from webui.chat_service import ChatService
from webui.request_context import turn_context


def register_script_api(service: ChatService) -> None:
    """Add the documented endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def chat(
        message: str, conversation_id: str | None = None, request: gr.Request = None
    ) -> Iterator[dict[str, Any]]:
        """Stream a reply. Yields {conversation_id, reply, status, notice}; pass conversation_id to continue."""
        ctx = turn_context(request)
        with contextlib.closing(service.reply(ctx, conversation_id or None, message)) as updates:
            for update in updates:
                yield {
                    "conversation_id": update.conversation_id,
                    "reply": update.reply,
                    "status": update.status,
                    "notice": update.notice,
                }

    gr.api(chat, api_name="chat", concurrency_limit=None)
