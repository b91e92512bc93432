"""Retention: expired history and audit records go, what was purged is itself audited, and the
shortened audit chain still verifies (while an unexplained gap still does not)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import text

from core.audit import CHAT_REQUEST, RETENTION_PURGED, AuditEvent
from store.audit_log import AuditLog
from store.chat_history import ChatHistory, ConversationNotFound

ALICE = "https://idp.example|alice"


def test_history_purge_deletes_only_conversations_idle_past_the_limit(history, clock, audit_sink):
    old = history.create_conversation(ALICE, "old")
    history.append_message(ALICE, old.id, "user", "from last year")
    revived = history.create_conversation(ALICE, "revived")
    clock.advance(days=40)
    history.append_message(ALICE, revived.id, "user", "still talking")
    recent = history.create_conversation(ALICE, "recent")
    clock.advance(days=1)

    assert history.purge(history_days=30) == 1

    assert {c.id for c in history.list_conversations(ALICE)} == {revived.id, recent.id}
    with pytest.raises(ConversationNotFound):
        history.get_conversation(ALICE, old.id)
    [event] = audit_sink.of_type(RETENTION_PURGED)
    assert event.details["scope"] == "history"
    assert (event.details["conversations"], event.details["messages"]) == (1, 1)


def test_zero_days_keeps_everything(history, audit_log, clock):
    history.create_conversation(ALICE, "forever")
    audit_log.record(AuditEvent(type=CHAT_REQUEST))
    clock.advance(days=10_000)
    assert (history.purge(0), audit_log.purge(0)) == (0, 0)
    assert len(history.list_conversations(ALICE)) == 1


def test_audit_purge_leaves_a_checkpoint_and_the_chain_verifies(audit_log, clock):
    for _ in range(3):
        audit_log.record(AuditEvent(type=CHAT_REQUEST, actor="old"))
    clock.advance(days=100)
    for _ in range(2):
        audit_log.record(AuditEvent(type=CHAT_REQUEST, actor="new"))

    assert audit_log.purge(audit_days=90) == 3

    records = audit_log.query().records
    assert [r.actor for r in records] == [None, "new", "new"]
    checkpoint = records[0].details_dict
    assert records[0].type == RETENTION_PURGED
    assert (checkpoint["scope"], checkpoint["rows"], checkpoint["last_purged_id"]) == (
        "audit",
        3,
        3,
    )
    assert audit_log.verify().ok
    assert audit_log.purge(audit_days=90) == 0  # nothing more to do: no second checkpoint
    assert audit_log.query().total == 3


def test_repeated_purges_and_purging_everything_still_verify(audit_log, clock):
    audit_log.record(AuditEvent(type=CHAT_REQUEST))
    clock.advance(days=10)
    assert audit_log.purge(audit_days=5) == 1
    clock.advance(days=10)
    audit_log.record(AuditEvent(type=CHAT_REQUEST))
    clock.advance(days=10)
    # The first checkpoint and the later record are both old now.
    assert audit_log.purge(audit_days=5) == 2
    assert audit_log.verify().ok
    assert audit_log.query().total == 1


def test_deleting_old_records_without_a_checkpoint_still_fails(audit_log, database, clock):
    for _ in range(3):
        audit_log.record(AuditEvent(type=CHAT_REQUEST))
    clock.advance(days=100)
    audit_log.record(AuditEvent(type=CHAT_REQUEST))
    audit_log.purge(audit_days=90)
    with database.write() as session:
        # Someone removes the checkpoint and the record after it stays dangling.
        session.execute(text("DELETE FROM audit_log WHERE type = :t"), {"t": RETENTION_PURGED})

    result = audit_log.verify()
    assert not result.ok


def test_retention_follows_the_wall_clock_by_default(database, audit_sink):
    # Default clocks (no injection), driven by time-machine: what production runs.
    with time_machine.travel(datetime(2025, 1, 1, tzinfo=UTC), tick=False) as traveller:
        history = ChatHistory(database, audit_sink)
        log = AuditLog(database)
        history.create_conversation(ALICE, "new year")
        log.record(AuditEvent(type=CHAT_REQUEST))
        traveller.move_to(datetime(2025, 3, 1, tzinfo=UTC))

        assert (history.purge(history_days=60), log.purge(audit_days=60)) == (0, 0)
        traveller.move_to(datetime(2025, 3, 3, tzinfo=UTC))
        assert (history.purge(history_days=60), log.purge(audit_days=60)) == (1, 1)
        assert log.verify().ok
