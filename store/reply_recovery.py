"""Replies left "streaming" by a crashed server are marked "interrupted", with an audit record each.

A streaming reply holds a lease: its `saved_at`, renewed by each partial save of the turn and, for
the silent stretches (waiting in the engine's queue, a long prompt's prefill), by this job, which
renews every reply its process is still writing (ChatHistory.live_replies) every `check_every`. A
reply whose lease is older than `stale_after` has no live writer: its server was killed before the
final save. Then, in one UPDATE, it becomes "interrupted", keeping the partial text last saved, and
a `chat.reply` record with outcome "interrupted" ends the turn in the audit trail.

Why this is safe with several replicas sharing the database: a replica only interrupts replies whose
lease has lapsed, and a live replica renews its own leases every `stale_after / 4`, so a reply that
another replica is still writing is never older than about a quarter of `stale_after` (three missed
renewals of margin, plus clock skew between servers, which NTP keeps far below a second). An
instance id per row would not do on its own: a new process cannot tell a dead instance from a live
one without such a lease anyway. The UPDATE re-checks status and lease, so a reply saved in the
meantime is left alone; if a writer stalls past `stale_after` (a database outage) and then saves
again, its save wins and the trail shows both records.

The check runs once when the server starts, before it serves, and then every `check_every`: a
reply orphaned by a restart within `stale_after` is marked by that later check, and a replica that
dies for good is cleaned up by the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from core.audit import CHAT_REPLY, AuditEvent, AuditSink
from store.database import Database
from store.periodic import PeriodicJob
from store.schema import ConversationRow, MessageRow

log = logging.getLogger("chat.recovery")


@dataclass(frozen=True)
class InterruptedReply:
    owner_key: str | None  # None only if the conversation was deleted meanwhile
    conversation_id: str
    message_id: int
    chars: int  # of the partial text kept


class ReplyRecovery:
    """Renews this process's reply leases and interrupts lapsed ones; start() runs it on a schedule."""

    def __init__(
        self,
        database: Database,
        audit: AuditSink,
        live_replies: Callable[[], list[int]],
        stale_after: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = database
        self._audit = audit
        self._live_replies = live_replies
        self._stale_after = stale_after
        self._clock = clock
        # The first check runs in the caller: done before the server serves.
        self._job = PeriodicJob(
            "reply-recovery", self.check_every.total_seconds(), self.run_once, first_in_caller=True
        )

    @property
    def check_every(self) -> timedelta:
        return self._stale_after / 4

    def renew(self) -> int:
        """Touch the lease of every reply this process is still writing; how many were touched."""
        live = self._live_replies()
        if not live:
            return 0
        with self._db.write() as session:
            return session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(live), MessageRow.status == "streaming")
                .values(saved_at=self._clock())
                .execution_options(synchronize_session=False)
            ).rowcount

    def interrupt_stale(self) -> list[InterruptedReply]:
        """Mark streaming replies whose lease lapsed as interrupted, and audit each."""
        cutoff = self._clock() - self._stale_after
        with self._db.write() as session:
            marked = session.execute(
                update(MessageRow)
                .where(
                    MessageRow.status == "streaming",
                    or_(MessageRow.saved_at.is_(None), MessageRow.saved_at < cutoff),
                )
                .values(status="interrupted")
                .returning(MessageRow.id, MessageRow.conversation_id, MessageRow.content)
                .execution_options(synchronize_session=False)
            ).all()
            owners = dict(
                session.execute(
                    select(ConversationRow.id, ConversationRow.owner_key).where(
                        ConversationRow.id.in_({row.conversation_id for row in marked})
                    )
                ).all()
            )
        # After the commit: the audit trail takes its own write lock (on SQLite, the same one).
        interrupted = [
            InterruptedReply(
                owners.get(row.conversation_id), row.conversation_id, row.id, len(row.content)
            )
            for row in sorted(marked, key=lambda row: row.id)
        ]
        for reply in interrupted:
            self._audit.record(
                AuditEvent(
                    type=CHAT_REPLY,
                    actor=reply.owner_key,
                    target=reply.conversation_id,
                    outcome="interrupted",
                    details={"message_id": reply.message_id, "reply_chars": reply.chars},
                )
            )
        if interrupted:
            log.warning("replies interrupted by a server stop", extra={"count": len(interrupted)})
        return interrupted

    def run_once(self) -> int:
        """Renew, then interrupt what has lapsed; how many replies were interrupted."""
        self.renew()
        return len(self.interrupt_stale())

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()
