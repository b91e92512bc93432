"""Tamper evidence: someone with write access to the table edits, deletes or inserts records;
verification (and the `audit verify` command) names the first bad record."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from core.audit import CHAT_REQUEST, LOGIN_SUCCESS, AuditEvent
from store.audit_chain import record_hash
from store.audit_log import AuditLog
from store.cli import verify_audit
from store.database import create_database, migrate
from store.schema import GENESIS_HASH


def _fill(audit_log, count=5):
    for number in range(count):
        audit_log.record(AuditEvent(type=CHAT_REQUEST, actor=f"u{number}", outcome="completed"))


def _sql(database, statement, **params):
    with database.write() as session:
        session.execute(text(statement), params)


def test_an_untouched_chain_verifies(audit_log, database_url, capsys):
    _fill(audit_log)

    result = audit_log.verify()

    assert (result.ok, result.checked, result.first_bad_id) == (True, 5, None)
    assert verify_audit(database_url) == 0
    assert capsys.readouterr().out.strip() == "audit chain OK: 5 records checked"


def test_an_empty_chain_verifies(audit_log):
    assert audit_log.verify().ok


def test_an_edited_record_is_detected(audit_log, database, database_url, capsys):
    _fill(audit_log)
    _sql(database, "UPDATE audit_log SET outcome = 'error' WHERE id = 3")

    result = audit_log.verify()

    assert (result.ok, result.first_bad_id) == (False, 3)
    assert "altered" in result.reason
    assert verify_audit(database_url) == 1
    assert "BROKEN at record 3" in capsys.readouterr().out


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(audit_log, database):
    _fill(audit_log)
    with database.write() as session:
        session.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE id = 2"))
    forged = audit_log.query(type=CHAT_REQUEST, actor="someone-else").records[0]
    _sql(database, "UPDATE audit_log SET hash = :h WHERE id = 2", h=record_hash(forged))

    result = audit_log.verify()

    assert (result.ok, result.first_bad_id) == (False, 3)
    assert "link" in result.reason


def test_a_deleted_record_is_detected(audit_log, database):
    _fill(audit_log)
    _sql(database, "DELETE FROM audit_log WHERE id = 3")

    result = audit_log.verify()

    assert (result.ok, result.first_bad_id) == (False, 4)
    assert "deleted" in result.reason


@pytest.mark.parametrize(
    ("where", "bad_id"),
    [("id = 1", 2), ("id = 5", 5), ("id >= 1", 5)],
    ids=["oldest", "newest", "all"],
)
def test_deleting_the_oldest_newest_or_all_records_is_detected(audit_log, database, where, bad_id):
    _fill(audit_log)
    _sql(database, f"DELETE FROM audit_log WHERE {where}")

    result = audit_log.verify()

    assert (result.ok, result.first_bad_id) == (False, bad_id)


def test_an_inserted_record_is_detected(audit_log, database, clock):
    _fill(audit_log)
    with database.read() as session:
        last_hash = session.execute(text("SELECT hash FROM audit_log WHERE id = 5")).scalar_one()
    # A well-formed record with a correct hash, linked to the last one, but not written by AuditLog.
    forged = _ForgedRecord(id=6, prev_hash=last_hash, ts=clock.now)
    _sql(
        database,
        "INSERT INTO audit_log (id, ts, type, actor, ip, request_id, target, outcome, details,"
        " prev_hash, hash) VALUES (:id, :ts, :type, :actor, NULL, NULL, NULL, NULL, :details,"
        " :prev_hash, :hash)",
        id=6,
        ts=clock.now.replace(tzinfo=None) if database.dialect == "sqlite" else clock.now,
        type=LOGIN_SUCCESS,
        actor="intruder",
        details="{}",
        prev_hash=last_hash,
        hash=record_hash(forged),
    )

    result = audit_log.verify()

    assert (result.ok, result.first_bad_id) == (False, 6)
    assert "outside the audit log" in result.reason


class _ForgedRecord:
    def __init__(self, id, prev_hash, ts):
        self.id, self.prev_hash, self.ts = id, prev_hash, ts
        self.type, self.actor, self.details = LOGIN_SUCCESS, "intruder", "{}"
        self.ip = self.request_id = self.target = self.outcome = None


def test_a_record_swapped_in_from_elsewhere_is_detected(audit_log, database):
    _fill(audit_log, 4)
    _sql(database, "UPDATE audit_log SET prev_hash = :g WHERE id = 3", g=GENESIS_HASH)
    assert audit_log.verify().first_bad_id == 3


def test_verify_cli_reports_a_missing_schema(tmp_path, capsys):
    assert verify_audit(f"sqlite:///{tmp_path}/nothing.db") == 2
    assert "migrate" in capsys.readouterr().out


def test_concurrent_writers_keep_one_unbroken_chain(database_url, database):
    # Two engines stand for two replicas; each has several threads, hence several connections.
    other = create_database(database_url)
    logs = [AuditLog(database), AuditLog(other)]
    writers, per_writer = 6, 15
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for index in range(per_writer):
                logs[number % 2].record(AuditEvent(type=CHAT_REQUEST, actor=f"w{number}-{index}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()

    assert errors == []
    result = logs[0].verify()
    assert (result.ok, result.checked) == (True, writers * per_writer)


def test_verify_cli_works_on_a_fresh_database(tmp_path, capsys):
    database = create_database(f"sqlite:///{tmp_path}/fresh.db")
    migrate(database)
    database.dispose()
    assert verify_audit(f"sqlite:///{tmp_path}/fresh.db") == 0
