"""Per-user history as the web layer sees it: conversation data, and the History seam
(store.chat_history.ChatHistory implements it in SQL; tests use the same class on SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "system"]
# A reply is "streaming" from the moment its turn starts until its final save; "interrupted" if its
# server died first (store/reply_recovery.py). The others are final states the turn itself saves.
Status = Literal["streaming", "complete", "stopped", "error", "interrupted"]
ROLES = frozenset({"user", "assistant", "system"})
STATUSES = frozenset({"streaming", "complete", "stopped", "error", "interrupted"})
DEFAULT_TITLE = "New conversation"
# How long a deleted conversation can be restored (the sidebar's Undo line shows this long); after
# it the conversation and its messages are purged: at the owner's next delete, or by the retention
# job's sweep of deleted conversations (store/retention_job.py), whichever comes first.
UNDO_WINDOW = timedelta(seconds=20)
MAX_TITLE = 200


class ConversationNotFound(LookupError):
    """Missing or not the caller's: the two are deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("conversation not found")


class NoTurnToReplace(Exception):
    """The conversation does not end with a finished question and reply (nothing to redo)."""

    def __init__(self) -> None:
        super().__init__("no finished turn to replace")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    status: str
    created_at: datetime
    notice: str | None = None  # why a reply ended short: an i18n key, translated when shown


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


def ends_with_finished_turn(messages: Sequence[Any]) -> bool:
    """The conversation (oldest first; Message or a store row) closes with a question and a reply
    that is no longer being written: the turn a retry or an edit may replace."""
    if len(messages) < 2:
        return False
    question, reply = messages[-2:]
    return question.role == "user" and reply.role == "assistant" and reply.status != "streaming"


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

    def replace_last_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        """Replace the last question and its finished reply by `user_text` and an empty
        "streaming" reply, together; the reply's id (NoTurnToReplace if there is none)."""
        ...

    def update_message(
        self,
        owner_key: str,
        conversation_id: str,
        message_id: int,
        content: str,
        status: str,
        notice: str | None = None,
    ) -> None: ...

    def rename(self, owner_key: str, conversation_id: str, title: str) -> None: ...

    @property
    def undo_window(self) -> timedelta:
        """How long after a delete `restore` still brings the conversation back."""
        ...

    def delete(self, owner_key: str, conversation_id: str) -> ConversationSummary:
        """Hide the conversation from its owner at once; restorable for `undo_window`."""
        ...

    def restore(self, owner_key: str, conversation_id: str) -> ConversationSummary:
        """Undo a delete within `undo_window`; later (or not deleted, or not theirs): not found."""
        ...

    def export_markdown(self, owner_key: str, conversation_id: str) -> str: ...

    def export_json(self, owner_key: str, conversation_id: str) -> str: ...
