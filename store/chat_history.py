"""Per-user conversations. Every query carries the owner key in its WHERE clause (object-level
authorization in SQL): another user's id behaves exactly like a missing one, and the attempt is audited."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from core.audit import NOT_FOUND, RETENTION_PURGED, AuditEvent, AuditSink
from core.history import (
    DEFAULT_TITLE,
    ROLES,
    STATUSES,
    Conversation,
    ConversationNotFound,
    ConversationSummary,
    Message,
    Role,
    Status,
    clean_title,
)
from store.conversation_export import to_json, to_markdown
from store.database import Database
from store.like import LIKE_ESCAPE, contains_pattern
from store.schema import ConversationRow, MessageRow

MAX_PAGE = 200

__all__ = ["ChatHistory", "Conversation", "ConversationNotFound", "ConversationSummary", "Message"]


class ChatHistory:
    def __init__(
        self,
        database: Database,
        audit: AuditSink,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = database
        self._audit = audit
        self._clock = clock
        # Replies this process is writing: their leases are renewed until the final save.
        self._live: set[int] = set()
        self._live_lock = threading.Lock()

    def create_conversation(self, owner_key: str, title: str = DEFAULT_TITLE) -> Conversation:
        now = self._clock()
        row = ConversationRow(
            id=uuid.uuid4().hex,
            owner_key=owner_key,
            title=clean_title(title),
            created_at=now,
            updated_at=now,
        )
        with self._db.write() as session:
            session.add(row)
        return Conversation(id=row.id, title=row.title, created_at=now, updated_at=now)

    def list_conversations(
        self, owner_key: str, search: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[ConversationSummary]:
        """The owner's conversations, most recently updated first; `search` matches titles and
        message text, case-insensitively, with % and _ taken literally."""
        statement = select(ConversationRow).where(ConversationRow.owner_key == owner_key)
        if search and search.strip():
            pattern = contains_pattern(search.strip())
            in_messages = exists().where(
                MessageRow.conversation_id == ConversationRow.id,
                MessageRow.content.ilike(pattern, escape=LIKE_ESCAPE),
            )
            statement = statement.where(
                or_(ConversationRow.title.ilike(pattern, escape=LIKE_ESCAPE), in_messages)
            )
        statement = statement.order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
        statement = statement.limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset))
        with self._db.read() as session:
            return [_summary(row) for row in session.scalars(statement)]

    def search(
        self, owner_key: str, text: str, limit: int = 50, offset: int = 0
    ) -> list[ConversationSummary]:
        return self.list_conversations(owner_key, search=text, limit=limit, offset=offset)

    def get_conversation(self, owner_key: str, conversation_id: str) -> Conversation:
        with self._db.read() as session:
            row = session.scalar(_owned(owner_key, conversation_id))
            if row is not None:
                messages = session.scalars(
                    select(MessageRow)
                    .where(MessageRow.conversation_id == row.id)
                    .order_by(MessageRow.id)
                )
                return Conversation(
                    id=row.id,
                    title=row.title,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    messages=tuple(
                        Message(m.role, m.content, m.status, m.created_at) for m in messages
                    ),
                )
        self._not_found(owner_key, conversation_id, "get")

    def append_message(
        self,
        owner_key: str,
        conversation_id: str,
        role: Role,
        content: str,
        status: Status = "complete",
    ) -> Message:
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}")
        now = self._clock()
        with self._db.write() as session:
            # The ownership check and the "touch" are one statement: no window between them.
            if _touch(session, owner_key, conversation_id, now):
                session.add(_message(conversation_id, role, content, status, now))
                return Message(role, content, status, now)
        self._not_found(owner_key, conversation_id, "append")

    def start_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        """Save the user's message and an empty assistant reply in status "streaming", in one
        transaction (the conversation never holds a user turn without its reply); the reply's id.

        Until update_message gives it a final status, the reply is listed by live_replies() so this
        process keeps its lease; a crash leaves it to store.reply_recovery."""
        now = self._clock()
        with self._db.write() as session:
            if _touch(session, owner_key, conversation_id, now):
                session.add(_message(conversation_id, "user", user_text, "complete", now))
                session.flush()  # the user's row first: messages are ordered by id
                reply = _message(conversation_id, "assistant", "", "streaming", now)
                session.add(reply)
                session.flush()
                reply_id = reply.id
            else:
                reply_id = None
        if reply_id is None:
            self._not_found(owner_key, conversation_id, "start_turn")
        with self._live_lock:
            self._live.add(reply_id)
        return reply_id

    def update_message(
        self,
        owner_key: str,
        conversation_id: str,
        message_id: int,
        content: str,
        status: Status,
    ) -> None:
        """Replace a message's content and status (a reply's partial text, then its final state);
        owner-checked like every write. Any status but "streaming" ends this process's lease."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {sorted(STATUSES)}")
        now = self._clock()
        try:
            with self._db.write() as session:
                found = _touch(session, owner_key, conversation_id, now) and bool(
                    session.execute(
                        update(MessageRow)
                        .where(
                            MessageRow.id == message_id,
                            MessageRow.conversation_id == conversation_id,
                        )
                        .values(content=content, status=status, saved_at=now)
                    ).rowcount
                )
        finally:
            if status != "streaming":
                with self._live_lock:
                    self._live.discard(message_id)
        if not found:
            self._not_found(owner_key, conversation_id, "update")

    def live_replies(self) -> list[int]:
        """Ids of the replies this process is still writing (store.reply_recovery renews them)."""
        with self._live_lock:
            return sorted(self._live)

    def rename(self, owner_key: str, conversation_id: str, title: str) -> None:
        with self._db.write() as session:
            result = session.execute(
                update(ConversationRow)
                .where(
                    ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key
                )
                .values(title=clean_title(title))
            )
            if result.rowcount:
                return
        self._not_found(owner_key, conversation_id, "rename")

    def delete(self, owner_key: str, conversation_id: str) -> None:
        with self._db.write() as session:
            owned = select(ConversationRow.id).where(
                ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key
            )
            session.execute(delete(MessageRow).where(MessageRow.conversation_id.in_(owned)))
            result = session.execute(
                delete(ConversationRow).where(
                    ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key
                )
            )
            if result.rowcount:
                return
        self._not_found(owner_key, conversation_id, "delete")

    def export_markdown(self, owner_key: str, conversation_id: str) -> str:
        return to_markdown(self.get_conversation(owner_key, conversation_id))

    def export_json(self, owner_key: str, conversation_id: str) -> str:
        return to_json(self.get_conversation(owner_key, conversation_id))

    def purge(self, history_days: int) -> int:
        """Delete conversations not updated for `history_days` (0 keeps everything); returns how many."""
        if history_days <= 0:
            return 0
        cutoff = self._clock() - timedelta(days=history_days)
        with self._db.write() as session:
            expired = select(ConversationRow.id).where(ConversationRow.updated_at < cutoff)
            messages = session.execute(
                delete(MessageRow).where(MessageRow.conversation_id.in_(expired))
            ).rowcount
            count = session.execute(
                delete(ConversationRow).where(ConversationRow.updated_at < cutoff)
            ).rowcount
        if count:
            self._audit.record(
                AuditEvent(
                    type=RETENTION_PURGED,
                    outcome="purged",
                    details={
                        "scope": "history",
                        "conversations": count,
                        "messages": messages,
                        "cutoff": cutoff.isoformat(),
                    },
                )
            )
        return count

    def _not_found(self, owner_key: str, conversation_id: str, action: str) -> NoReturn:
        self._audit.record(
            AuditEvent(
                type=NOT_FOUND,
                actor=owner_key,
                target=str(conversation_id)[:64],
                outcome="not_found",
                details={"object": "conversation", "action": action},
            )
        )
        raise ConversationNotFound()


def _owned(owner_key: str, conversation_id: str):
    return select(ConversationRow).where(
        ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key
    )


def _touch(session: Session, owner_key: str, conversation_id: str, now: datetime) -> bool:
    result = session.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key)
        .values(updated_at=now)
    )
    return bool(result.rowcount)


def _message(
    conversation_id: str, role: str, content: str, status: str, now: datetime
) -> MessageRow:
    return MessageRow(
        conversation_id=conversation_id,
        role=role,
        content=content,
        status=status,
        created_at=now,
        saved_at=now,
    )


def _summary(row: ConversationRow) -> ConversationSummary:
    return ConversationSummary(row.id, row.title, row.created_at, row.updated_at)
