"""What an insider with database write access and this code (but not the signing key) can do to the
audit tables, as plain SQL: rewrite and re-chain, save and restore a copy, truncate, strip signatures.
And the keys and checkpoint job the honest application runs with."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select, text

from core.audit import CHAT_REQUEST, AuditEvent
from store.audit_chain import record_hash
from store.audit_keys import (
    AuditKeys,
    AuditVerifier,
    audit_keys,
    generate_private_key_text,
    load_private_key,
    public_key_text,
)
from store.audit_log import AuditLog
from store.checkpoint_job import CheckpointJob
from store.database import Database
from store.masking import Masker
from store.schema import AuditRow
from store.settings import AuditSettings

_COLUMNS = "id, ts, type, actor, ip, request_id, target, outcome, details, prev_hash, hash, key_id, signature"


@dataclass(frozen=True)
class KeyPair:
    private: str
    public: str

    @classmethod
    def new(cls) -> KeyPair:
        private = generate_private_key_text()
        return cls(private, public_key_text(load_private_key(private, "test").public_key()))

    def keys(self) -> AuditKeys:
        return audit_keys(AuditSettings(signing_keys=(SecretStr(self.private),)))

    def public_only(self) -> AuditKeys:
        return public_keys(self.public)


def public_keys(*public: str) -> AuditKeys:
    return audit_keys(AuditSettings(), list(public))


def verifier(*public: str) -> AuditVerifier:
    keys = public_keys(*public)
    assert keys.verifier is not None
    return keys.verifier


class SteppedMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def checkpoint_job(log: AuditLog, keys: AuditKeys, path: Path | None, clock, **kw) -> CheckpointJob:
    assert keys.signer is not None
    options = {"interval_seconds": 60, "every_records": 1000, "clock": clock, **kw}
    return CheckpointJob(log, keys.signer, path, **options)


def signed_log(database: Database, keys: AuditKeys, clock) -> AuditLog:
    return AuditLog(database, Masker(), clock, signer=keys.signer)


_numbers = itertools.count()


def fill(log: AuditLog, count: int, actor: str = "u") -> None:
    for _ in range(count):
        log.record(AuditEvent(type=CHAT_REQUEST, actor=f"{actor}{next(_numbers)}", outcome="ok"))


def sql(database: Database, statement: str, **params: Any) -> None:
    with database.write() as session:
        session.execute(text(statement), params)


def rows(database: Database, where: str = "1 = 1") -> list[Any]:
    with database.read() as session:
        return list(
            session.execute(text(f"SELECT {_COLUMNS} FROM audit_log WHERE {where} ORDER BY id"))
        )


def rechain_from(database: Database, first_id: int) -> None:
    """Recompute every hash from `first_id` on with the code's own record_hash, and the head: the
    chain links up again. Signatures cannot be recomputed without the key, so they stay."""
    previous = rows(database, f"id = {first_id - 1}")
    prev_hash = previous[0].hash if previous else "0" * 64
    with database.read() as session:  # typed rows: ts as an aware datetime on both engines
        typed = list(
            session.execute(
                select(AuditRow.__table__).where(AuditRow.id >= first_id).order_by(AuditRow.id)
            )
        )
    for row in typed:
        record = SimpleNamespace(**row._mapping)
        record.prev_hash = prev_hash
        new_hash = record_hash(record)
        sql(
            database,
            "UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :i",
            p=prev_hash,
            h=new_hash,
            i=row.id,
        )
        prev_hash, last_id = new_hash, row.id
    sql(database, "UPDATE audit_head SET last_id = :i, last_hash = :h", i=last_id, h=prev_hash)


def save_copy(database: Database) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    """The audit tables as they are now: what a backup the insider keeps would restore."""
    with database.read() as session:
        saved = [
            dict(row._mapping) for row in session.execute(text(f"SELECT {_COLUMNS} FROM audit_log"))
        ]
        head = tuple(session.execute(text("SELECT last_id, last_hash FROM audit_head")).one())
    return saved, head


def restore_copy(database: Database, copy: tuple[list[dict[str, Any]], tuple[int, str]]) -> None:
    saved, (last_id, last_hash) = copy
    columns = _COLUMNS.split(", ")
    insert = f"INSERT INTO audit_log ({_COLUMNS}) VALUES ({', '.join(':' + c for c in columns)})"
    with database.write() as session:
        session.execute(text("DELETE FROM audit_log"))
        for row in saved:
            session.execute(text(insert), row)
        session.execute(
            text("UPDATE audit_head SET last_id = :i, last_hash = :h"),
            {"i": last_id, "h": last_hash},
        )


def truncate_after(database: Database, last_kept: int) -> None:
    """Delete the newest records and point the head at the last one kept: the chain links up."""
    [kept] = rows(database, f"id = {last_kept}")
    sql(database, "DELETE FROM audit_log WHERE id > :i", i=last_kept)
    sql(database, "UPDATE audit_head SET last_id = :i, last_hash = :h", i=last_kept, h=kept.hash)
