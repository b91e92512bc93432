"""Named API endpoints for scripts using gradio_client: same identity, limits and audit as the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from core.blocking_io import close_off_the_loop
from core.history import History
from core.request_facts import current_user
from webui.chat_service import ChatService
from webui.request_context import turn_context


def register_script_api(service: ChatService, history: History) -> None:
    """Add the documented endpoints to the Blocks being built (call inside `with gr.Blocks()`)."""

    def chat(
        message: str, conversation_id: str | None = None, request: gr.Request = None
    ) -> Iterator[dict[str, Any]]:
        """Stream a reply: yields {conversation_id, reply, status, notice, retry_after}.

        status: "streaming", then "complete", "stopped" or "error"; or, with nothing generated,
        "rate_limited" (retry_after: seconds to wait) or "refused" (notice says why). Pass
        conversation_id to continue a conversation.
        """
        ctx = turn_context(request)
        updates = service.reply(ctx, conversation_id or None, message or "")
        try:
            for update in updates:
                yield {
                    "conversation_id": update.conversation_id,
                    "reply": update.reply,
                    "status": update.status,
                    "notice": update.notice,
                    "retry_after": update.retry_after,
                }
        finally:
            close_off_the_loop(updates)  # a stop saves the reply: SQL, not on Gradio's loop

    def list_conversations(search: str = "", request: gr.Request = None) -> list[dict[str, Any]]:
        """Your conversations, newest first: [{id, title, updated_at}]; `search` filters by text."""
        user = current_user(request)
        found = history.list_conversations(user.key, search=search or None, limit=100, offset=0)
        return [
            {"id": c.id, "title": c.title, "updated_at": c.updated_at.isoformat()} for c in found
        ]

    def get_conversation(conversation_id: str, request: gr.Request = None) -> dict[str, Any]:
        """One of your conversations with its messages: {id, title, messages: [{role, content, status}]}."""
        user = current_user(request)
        try:
            found = history.get_conversation(user.key, conversation_id)
        except LookupError:
            raise gr.Error("Conversation not found.", print_exception=False) from None
        return {
            "id": found.id,
            "title": found.title,
            "messages": [
                {"role": m.role, "content": m.content, "status": m.status} for m in found.messages
            ],
        }

    def delete_conversation(conversation_id: str, request: gr.Request = None) -> dict[str, Any]:
        """Delete one of your conversations: {deleted: true}."""
        user = current_user(request)
        try:
            history.delete(user.key, conversation_id)
        except LookupError:
            raise gr.Error("Conversation not found.", print_exception=False) from None
        return {"deleted": True}

    gr.api(chat, api_name="chat", concurrency_limit=None)
    gr.api(list_conversations, api_name="list_conversations")
    gr.api(get_conversation, api_name="get_conversation")
    gr.api(delete_conversation, api_name="delete_conversation")
