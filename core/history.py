"""Per-user history as the web layer sees it: conversation data, and the History seam
(store.chat_history.ChatHistory implements it in SQL; tests use the same class on SQLite)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Role = Literal["user", "assistant", "system"]
# A reply is "streaming" from the moment its turn starts until its final save; "interrupted" if its
# server died first (store/reply_recovery.py). The others are final states the turn itself saves.
Status = Literal["streaming", "complete", "stopped", "error", "interrupted"]
ROLES = frozenset({"user", "assistant", "system"})
STATUSES = frozenset({"streaming", "complete", "stopped", "error", "interrupted"})
DEFAULT_TITLE = "New conversation"
MAX_TITLE = 200


class ConversationNotFound(LookupError):
    """Missing or not the caller's: the two are deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("conversation not found")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    messages: tuple[Message, ...] = ()


def clean_title(title: str) -> str:
    # No newlines: titles become Markdown headings and list rows.
    collapsed = " ".join(title.split())
    return collapsed[:MAX_TITLE] or DEFAULT_TITLE


class History(Protocol):
    """Every call takes the owner's key; another owner's conversation is ConversationNotFound."""

    def create_conversation(self, owner_key: str, title: str = DEFAULT_TITLE) -> Conversation: ...

    def list_conversations(
        self, owner_key: str, search: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[ConversationSummary]: ...

    def get_conversation(self, owner_key: str, conversation_id: str) -> Conversation: ...

    def start_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        """Save the user's message and an empty "streaming" reply together; the reply's id."""
        ...

    def update_message(
        self, owner_key: str, conversation_id: str, message_id: int, content: str, status: str
    ) -> None: ...

    def rename(self, owner_key: str, conversation_id: str, title: str) -> None: ...

    def delete(self, owner_key: str, conversation_id: str) -> None: ...

    def export_markdown(self, owner_key: str, conversation_id: str) -> str: ...

    def export_json(self, owner_key: str, conversation_id: str) -> str: ...
