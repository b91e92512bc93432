"""Migration 0004 adds the signature columns to a trail that already has records, and goes back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from core.audit import CHAT_REQUEST, AuditEvent
from store.audit_log import AuditLog
from store.database import alembic_config, migrate
from tests.store.audit_forger import KeyPair


def _columns(database) -> set[str]:
    return {column["name"] for column in inspect(database.engine).get_columns("audit_log")}


def test_upgrade_keeps_old_records_unsigned_and_downgrade_removes_the_columns(empty_database):
    migrate(empty_database, "0003")
    with empty_database.write() as session:  # a record as the previous schema wrote it
        session.execute(
            text(
                "INSERT INTO audit_log (id, ts, type, details, prev_hash, hash) "
                "VALUES (1, :ts, 'chat.request', '{}', :zero, :zero)"
            ),
            {"ts": "2026-01-01 00:00:00", "zero": "0" * 64},
        )
    assert {"key_id", "signature"}.isdisjoint(_columns(empty_database))

    migrate(empty_database)
    assert {"key_id", "signature"} <= _columns(empty_database)
    with empty_database.read() as session:
        row = session.execute(text("SELECT key_id, signature FROM audit_log WHERE id = 1")).one()
    assert tuple(row) == (None, None)

    command.downgrade(alembic_config(empty_database), "0003")
    assert {"key_id", "signature"}.isdisjoint(_columns(empty_database))
    migrate(empty_database)
    assert {"key_id", "signature"} <= _columns(empty_database)


def test_the_upgraded_schema_takes_signed_records(empty_database):
    migrate(empty_database)
    pair = KeyPair.new()
    AuditLog(empty_database, signer=pair.keys().signer).record(AuditEvent(type=CHAT_REQUEST))
    result = AuditLog(empty_database).verify(pair.public_only().verifier)
    assert result.ok and result.signatures.signed == 1
