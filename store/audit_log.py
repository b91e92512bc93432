"""The SQL audit trail: an append-only, hash-chained table that several replicas can write at once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from core.audit import RETENTION_PURGED, AuditEvent
from store.audit_chain import (
    AUDIT_SCOPE,
    AuditRecord,
    VerifyResult,
    canonical_json,
    record_hash,
    verify_chain,
)
from store.audit_export import records_to_csv
from store.audit_keys import AuditSigner, AuditVerifier
from store.audit_signatures import SignatureWalk, sign_record
from store.database import Database
from store.like import LIKE_ESCAPE, contains_pattern
from store.masking import Masker
from store.schema import AuditHeadRow, AuditRow

MAX_PAGE = 500
MAX_EXPORT_ROWS = 100_000
_HEAD_ID = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditFilters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    actor: str | None = None  # substring of the user key, case-insensitive
    type: str | None = None  # exact event type
    text: str | None = None  # substring of any text field, case-insensitive


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    total: int
    limit: int
    offset: int


class AuditLog:
    """Implements AuditSink. A failed write raises: an audit trail that silently drops records is worse.

    With a `signer`, every record carries an Ed25519 signature of its chain hash (store/audit_keys.py).
    """

    def __init__(
        self,
        database: Database,
        masker: Masker | None = None,
        clock: Callable[[], datetime] = utc_now,
        signer: AuditSigner | None = None,
    ) -> None:
        self._db = database
        self._masker = masker or Masker()
        self._clock = clock
        self._signer = signer

    def record(self, event: AuditEvent) -> None:
        with self._db.write() as session:
            self._append(session, event, mask=True)

    def verify(
        self, verifier: AuditVerifier | None = None, signed_from: int | None = None
    ) -> VerifyResult:
        """Walk the whole chain; with a verifier, also every signature (see SignatureWalk)."""
        walk = SignatureWalk(verifier, signed_from) if verifier is not None else None
        with self._db.read() as session:
            head = session.get_one(AuditHeadRow, _HEAD_ID)
            head_id, head_hash = head.last_id, head.last_hash
            rows = session.execute(
                select(AuditRow.__table__).order_by(AuditRow.id).execution_options(yield_per=1000)
            )
            return verify_chain(rows, head_id, head_hash, walk)

    def head(self) -> tuple[int, str]:
        """The newest record's id and hash, as the head row has them."""
        with self._db.read() as session:
            head = session.get_one(AuditHeadRow, _HEAD_ID)
            return head.last_id, head.last_hash

    def first_signed_id(self) -> int | None:
        with self._db.read() as session:
            return session.scalar(
                select(func.min(AuditRow.id)).where(AuditRow.signature.is_not(None))
            )

    def hashes(self, ids: Iterable[int]) -> dict[int, str]:
        """The stored hash of each of `ids` that still exists."""
        wanted, found = sorted(set(ids)), {}
        with self._db.read() as session:
            for start in range(0, len(wanted), 500):
                batch = wanted[start : start + 500]
                rows = session.execute(
                    select(AuditRow.id, AuditRow.hash).where(AuditRow.id.in_(batch))
                )
                found.update({row.id: row.hash for row in rows})
        return found

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        type: str | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> AuditPage:
        """Newest first, for the admin tab; `total` counts all matches for pagination."""
        filters = AuditFilters(since=since, until=until, actor=actor, type=type, text=text)
        limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
        conditions = _conditions(filters)
        with self._db.read() as session:
            total = session.scalar(select(func.count()).select_from(AuditRow).where(*conditions))
            rows = session.execute(
                select(AuditRow.__table__)
                .where(*conditions)
                .order_by(AuditRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            records = [_to_record(row) for row in rows]
        return AuditPage(records=records, total=total or 0, limit=limit, offset=offset)

    def export_csv(self, filters: AuditFilters | None = None) -> str:
        """CSV of matching records, newest first (already masked at write time)."""
        conditions = _conditions(filters or AuditFilters())
        with self._db.read() as session:
            rows = session.execute(
                select(AuditRow.__table__)
                .where(*conditions)
                .order_by(AuditRow.id.desc())
                .limit(MAX_EXPORT_ROWS)
            )
            return records_to_csv(_to_record(row) for row in rows)

    def purge(self, audit_days: int) -> int:
        """Delete records older than `audit_days` (0 keeps everything) and leave a checkpoint record
        naming the last purged record's id and hash, so the shortened chain still verifies."""
        if audit_days <= 0:
            return 0
        cutoff = self._clock() - timedelta(days=audit_days)
        with self._db.write() as session:
            head = _lock_head(session)
            first_kept = session.scalar(select(func.min(AuditRow.id)).where(AuditRow.ts >= cutoff))
            bound = first_kept if first_kept is not None else head.last_id + 1
            # Only a prefix of the chain is removed, so the rest stays linked.
            last = session.execute(
                select(AuditRow.id, AuditRow.hash)
                .where(AuditRow.id < bound)
                .order_by(AuditRow.id.desc())
                .limit(1)
            ).first()
            if last is None:
                return 0
            count = session.execute(delete(AuditRow).where(AuditRow.id < bound)).rowcount
            checkpoint = AuditEvent(
                type=RETENTION_PURGED,
                outcome="purged",
                details={
                    "scope": AUDIT_SCOPE,
                    "rows": count,
                    "last_purged_id": last.id,
                    "last_purged_hash": last.hash,
                    "cutoff": cutoff.isoformat(),
                },
            )
            self._append(
                session, checkpoint, mask=False
            )  # our own fields: a hash must not be "masked"
        return count

    def _append(self, session: Session, event: AuditEvent, *, mask: bool) -> None:
        head = _lock_head(session)
        mask_text = self._masker.mask if mask else _same
        details: Any = dict(event.details)
        if mask:
            details = self._masker.mask_value(json.loads(canonical_json(details)))
        row = AuditRow(
            id=head.last_id + 1,
            ts=self._clock().astimezone(UTC),  # read under the lock, so ts follows id order
            type=_cut(event.type, 64),
            actor=_cut(event.actor, 512),
            ip=_cut(event.ip, 64),
            request_id=_cut(event.request_id, 128),
            target=_cut(_apply(mask_text, event.target), 256),
            outcome=_cut(_apply(mask_text, event.outcome), 256),
            details=canonical_json(details),
            prev_hash=head.last_hash,
        )
        row.hash = record_hash(row)
        if self._signer is not None:
            row.key_id, row.signature = sign_record(self._signer, row.hash)
        session.add(row)
        head.last_id, head.last_hash = row.id, row.hash
        session.flush()


def _lock_head(session: Session) -> AuditHeadRow:
    # FOR UPDATE serializes appends on PostgreSQL; on SQLite the write transaction is already exclusive.
    statement = select(AuditHeadRow).where(AuditHeadRow.id == _HEAD_ID).with_for_update()
    return session.execute(statement).scalar_one()


def _conditions(filters: AuditFilters) -> list[Any]:
    conditions: list[Any] = []
    if filters.since is not None:
        conditions.append(AuditRow.ts >= filters.since)
    if filters.until is not None:
        conditions.append(AuditRow.ts < filters.until)
    if filters.actor:
        conditions.append(AuditRow.actor.ilike(contains_pattern(filters.actor), escape=LIKE_ESCAPE))
    if filters.type:
        conditions.append(AuditRow.type == filters.type)
    if filters.text:
        pattern = contains_pattern(filters.text)
        columns = (AuditRow.type, AuditRow.actor, AuditRow.ip, AuditRow.request_id)
        columns += (AuditRow.target, AuditRow.outcome, AuditRow.details)
        conditions.append(or_(*(c.ilike(pattern, escape=LIKE_ESCAPE) for c in columns)))
    return conditions


_RECORD_FIELDS = tuple(f.name for f in fields(AuditRecord))


def _to_record(row: Any) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


def _cut(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


def _apply(function: Callable[[str], str], value: str | None) -> str | None:
    return None if value is None else function(value)


def _same(text: str) -> str:
    return text
