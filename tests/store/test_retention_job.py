"""The scheduled retention job against the real store: old rows go, the audit chain still verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from core.audit import RETENTION_PURGED, AuditEvent
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from store.retention_job import RetentionJob
from store.settings import RetentionSettings
from store.sql_session_store import SqlSessionStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_run_once_purges_what_is_past_retention_and_keeps_the_chain_verifiable(tmp_path):
    database = create_database(f"sqlite:///{tmp_path}/r.db")
    migrate(database)
    with time_machine.travel(START, tick=False) as clock:
        audit = AuditLog(database)
        history = ChatHistory(database, audit)
        old = history.create_conversation("owner", "old")
        history.append_message("owner", old.id, "user", "hello")
        audit.record(AuditEvent("login.success", actor="owner"))

        clock.move_to(START + timedelta(days=40))
        recent = history.create_conversation("owner", "recent")
        job = RetentionJob(
            RetentionSettings(history_days=30, audit_days=35),
            history,
            audit,
            SqlSessionStore(database),
        )
        counts = job.run_once()

    assert counts.conversations == 1 and counts.audit_records >= 1
    remaining = [c.id for c in history.list_conversations("owner")]
    assert remaining == [recent.id]
    purges = audit.query(type=RETENTION_PURGED).records
    assert {r.details_dict["scope"] for r in purges} >= {"history", "audit"}
    assert audit.verify().ok


def test_retention_zero_keeps_everything(tmp_path):
    database = create_database(f"sqlite:///{tmp_path}/r.db")
    migrate(database)
    audit = AuditLog(database)
    history = ChatHistory(database, audit)
    history.create_conversation("owner", "kept")
    job = RetentionJob(
        RetentionSettings(history_days=0, audit_days=0), history, audit, SqlSessionStore(database)
    )
    assert job.run_once().conversations == 0
    assert len(history.list_conversations("owner")) == 1
