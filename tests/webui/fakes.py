"""Small in-memory fakes for web-layer tests (the SQL store has its own tests)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from core.history import NoTurnToReplace, ends_with_finished_turn
from core.identity import User


@dataclass
class FakeMessage:
    role: str
    content: str
    status: str
    id: int = 0
    notice: str | None = None


@dataclass
class FakeConversation:
    id: str
    owner: str
    title: str
    messages: list[FakeMessage] = field(default_factory=list)
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class ConversationNotFound(LookupError):
    pass


class MemoryHistory:
    def __init__(self) -> None:
        self.conversations: dict[str, FakeConversation] = {}
        self._ids = itertools.count(1)

    def create_conversation(self, owner_key: str, title: str) -> FakeConversation:
        conversation = FakeConversation(uuid.uuid4().hex, owner_key, title)
        self.conversations[conversation.id] = conversation
        return conversation

    def get_conversation(self, owner_key: str, conversation_id: str) -> FakeConversation:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation.owner != owner_key:
            raise ConversationNotFound(conversation_id)
        return conversation

    def list_conversations(
        self, owner_key: str, search: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FakeConversation]:
        mine = [c for c in self.conversations.values() if c.owner == owner_key]
        mine.sort(key=lambda c: c.updated_at, reverse=True)
        return mine[offset : offset + limit]

    def rename(self, owner_key: str, conversation_id: str, title: str) -> None:
        self.get_conversation(owner_key, conversation_id).title = title

    def delete(self, owner_key: str, conversation_id: str) -> None:
        self.get_conversation(owner_key, conversation_id)
        del self.conversations[conversation_id]

    def append_message(
        self,
        owner_key: str,
        conversation_id: str,
        role: str,
        content: str,
        status: str = "complete",
    ) -> None:
        self.get_conversation(owner_key, conversation_id).messages.append(
            FakeMessage(role, content, status, next(self._ids))
        )

    def start_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        messages = self.get_conversation(owner_key, conversation_id).messages
        user = FakeMessage("user", user_text, "complete", next(self._ids))
        reply = FakeMessage("assistant", "", "streaming", next(self._ids))
        messages += [user, reply]
        return reply.id

    def replace_last_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        messages = self.get_conversation(owner_key, conversation_id).messages
        if not ends_with_finished_turn(messages):
            raise NoTurnToReplace()
        del messages[-2:]
        return self.start_turn(owner_key, conversation_id, user_text)

    def update_message(
        self,
        owner_key: str,
        conversation_id: str,
        message_id: int,
        content: str,
        status: str,
        notice: str | None = None,
    ) -> None:
        conversation = self.get_conversation(owner_key, conversation_id)
        (message,) = [m for m in conversation.messages if m.id == message_id]
        message.content, message.status, message.notice = content, status, notice


class FixedUserMiddleware:
    """Stands in for the auth gate: every request is `user`."""

    def __init__(self, app: ASGIApp, user: User) -> None:
        self.app = app
        self.user = user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("state", {})["user"] = self.user
        await self.app(scope, receive, send)
