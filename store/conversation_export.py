"""Markdown and JSON exports of one conversation (the user's own data, so not masked)."""

from __future__ import annotations

import json
from datetime import UTC

from core.history import Conversation

_ROLE_HEADINGS = {"user": "User", "assistant": "Assistant", "system": "System"}


def to_markdown(conversation: Conversation) -> str:
    lines = [f"# {conversation.title}", "", f"_Exported conversation {conversation.id}_", ""]
    for message in conversation.messages:
        heading = _ROLE_HEADINGS.get(message.role, message.role)
        stamp = message.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        note = "" if message.status == "complete" else f" ({message.status})"
        lines += [f"## {heading}{note}, {stamp}", "", message.content, ""]
    return "\n".join(lines)


def to_json(conversation: Conversation) -> str:
    document = {
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "created_at": m.created_at.isoformat(),
            }
            for m in conversation.messages
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)
