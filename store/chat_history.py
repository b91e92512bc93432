"""Per-user conversations. Every query carries the owner key in its WHERE clause (object-level
authorization in SQL): another user's id behaves exactly like a missing one, and the attempt is audited."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from core.audit import (
    CONVERSATION_DELETED,
    CONVERSATION_RESTORED,
    NOT_FOUND,
    RETENTION_PURGED,
    AuditEvent,
    AuditSink,
)
from core.history import (
    DEFAULT_TITLE,
    ROLES,
    STATUSES,
    UNDO_WINDOW,
    Conversation,
    ConversationNotFound,
    ConversationSummary,
    Message,
    NoTurnToReplace,
    Role,
    Status,
    clean_title,
    ends_with_finished_turn,
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
        undo_window: timedelta = UNDO_WINDOW,
    ) -> None:
        self._db = database
        self._audit = audit
        self._clock = clock
        self.undo_window = undo_window  # how long a delete can be undone (core.history)
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
        message text, case-insensitively, with % and _ taken literally. Deleted ones are left out."""
        statement = select(ConversationRow).where(
            ConversationRow.owner_key == owner_key, ConversationRow.deleted_at.is_(None)
        )
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
                        Message(m.role, m.content, m.status, m.created_at, m.notice)
                        for m in messages
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

    def replace_last_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        """Replace the conversation's last question and its finished reply with `user_text` and
        an empty "streaming" reply, in one transaction (regenerate, or edit the last message);
        the new reply's id. NoTurnToReplace if the conversation does not end with a finished turn."""
        now = self._clock()
        with self._db.write() as session:
            if not _touch(session, owner_key, conversation_id, now):
                reply_id = None
            else:
                last = session.scalars(
                    select(MessageRow)
                    .where(MessageRow.conversation_id == conversation_id)
                    .order_by(MessageRow.id.desc())
                    .limit(2)
                ).all()
                if not ends_with_finished_turn(last[::-1]):  # read newest first
                    raise NoTurnToReplace()
                session.execute(delete(MessageRow).where(MessageRow.id.in_([m.id for m in last])))
                session.add(_message(conversation_id, "user", user_text, "complete", now))
                session.flush()
                reply = _message(conversation_id, "assistant", "", "streaming", now)
                session.add(reply)
                session.flush()
                reply_id = reply.id
        if reply_id is None:
            self._not_found(owner_key, conversation_id, "replace_last_turn")
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
        notice: str | None = None,
    ) -> None:
        """Replace a message's content and status (a reply's partial text, then its final state,
        with the key of the notice that says why it ended short); owner-checked like every write.
        Any status but "streaming" ends this process's lease."""
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
                        .values(content=content, status=status, saved_at=now, notice=notice)
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
                    ConversationRow.id == conversation_id,
                    ConversationRow.owner_key == owner_key,
                    ConversationRow.deleted_at.is_(None),
                )
                .values(title=clean_title(title))
            )
            if result.rowcount:
                return
        self._not_found(owner_key, conversation_id, "rename")

    def delete(self, owner_key: str, conversation_id: str) -> ConversationSummary:
        """Hide the conversation from its owner at once (restorable for the undo window), and
        purge the owner's conversations deleted longer ago than that; the one deleted."""
        now = self._clock()
        with self._db.write() as session:
            live = ConversationRow.deleted_at.is_(None)
            deleted = _mark(session, owner_key, conversation_id, live, now)
            purged = _purge_deleted(session, now - self.undo_window, owner_key)
        if deleted is None:
            self._not_found(owner_key, conversation_id, "delete")
        self._record(CONVERSATION_DELETED, owner_key, deleted.id, "deleted", purged)
        return deleted

    def restore(self, owner_key: str, conversation_id: str) -> ConversationSummary:
        """Bring back a conversation deleted less than the undo window ago."""
        now = self._clock()
        within = ConversationRow.deleted_at > now - self.undo_window
        with self._db.write() as session:
            restored = _mark(session, owner_key, conversation_id, within, None)
        if restored is None:
            self._not_found(owner_key, conversation_id, "restore")
        self._record(CONVERSATION_RESTORED, owner_key, restored.id, "restored", (0, 0))
        return restored

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
        self._record_purge("history", count, messages, cutoff)
        return count

    def purge_deleted(self) -> int:
        """Delete for good every conversation (and its messages) deleted longer ago than the
        undo window; returns how many. The retention job runs it every minute or so."""
        cutoff = self._clock() - self.undo_window
        with self._db.write() as session:
            count, messages = _purge_deleted(session, cutoff)
        self._record_purge("deleted_conversations", count, messages, cutoff)
        return count

    def _record_purge(self, scope: str, count: int, messages: int, cutoff: datetime) -> None:
        if count:
            details = {
                "scope": scope,
                "conversations": count,
                "messages": messages,
                "cutoff": cutoff.isoformat(),
            }
            self._audit.record(AuditEvent(type=RETENTION_PURGED, outcome="purged", details=details))

    def _record(
        self, event: str, owner_key: str, conversation_id: str, outcome: str, purged: tuple
    ) -> None:
        # No title: it is the owner's words, and the audit trail outlives the conversation.
        details = {"undo_seconds": int(self.undo_window.total_seconds())}
        if purged[0]:
            details |= {"purged_conversations": purged[0], "purged_messages": purged[1]}
        self._audit.record(
            AuditEvent(
                type=event,
                actor=owner_key,
                target=conversation_id,
                outcome=outcome,
                details=details,
            )
        )

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
    """The owner's conversation, unless deleted: a deleted one is as missing as another's."""
    return select(ConversationRow).where(
        ConversationRow.id == conversation_id,
        ConversationRow.owner_key == owner_key,
        ConversationRow.deleted_at.is_(None),
    )


def _touch(session: Session, owner_key: str, conversation_id: str, now: datetime) -> bool:
    result = session.execute(
        update(ConversationRow)
        .where(
            ConversationRow.id == conversation_id,
            ConversationRow.owner_key == owner_key,
            # A deleted conversation takes no more messages: a reply still streaming into it stops.
            ConversationRow.deleted_at.is_(None),
        )
        .values(updated_at=now)
    )
    return bool(result.rowcount)


def _mark(
    session: Session,
    owner_key: str,
    conversation_id: str,
    condition: ColumnElement[bool],
    deleted_at: datetime | None,
) -> ConversationSummary | None:
    """Set the owner's conversation's deleted_at where `condition` holds; None if nothing did."""
    owned = (ConversationRow.id == conversation_id, ConversationRow.owner_key == owner_key)
    changed = session.execute(
        update(ConversationRow).where(*owned, condition).values(deleted_at=deleted_at)
    ).rowcount
    if not changed:
        return None
    row = session.scalar(select(ConversationRow).where(*owned))
    return _summary(row) if row is not None else None


def _purge_deleted(
    session: Session, cutoff: datetime, owner_key: str | None = None
) -> tuple[int, int]:
    """Delete conversations deleted at or before `cutoff` (only `owner_key`'s, if given) and
    their messages; (conversations, messages)."""
    expired = select(ConversationRow.id).where(ConversationRow.deleted_at <= cutoff)
    if owner_key is not None:
        expired = expired.where(ConversationRow.owner_key == owner_key)
    ids = list(session.scalars(expired))
    if not ids:
        return 0, 0
    messages = session.execute(
        delete(MessageRow).where(MessageRow.conversation_id.in_(ids))
    ).rowcount
    count = session.execute(delete(ConversationRow).where(ConversationRow.id.in_(ids))).rowcount
    return count, messages


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
