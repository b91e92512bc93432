"""Conversation data as the history service hands it out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

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
