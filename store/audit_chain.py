"""The audit hash chain: canonical content, the record hash, and verification of a whole table.

hash = SHA-256(canonical JSON of the record's fields including its id and prev_hash). Editing a record
breaks its hash; deleting or inserting one breaks the link (prev_hash) or the gap-free id sequence;
deleting the newest records disagrees with the head row; deleting the oldest without a retention
checkpoint leaves the first record pointing at a hash nobody vouches for.

Anyone who reads this code can recompute the hashes, so the chain alone only shows accidents and
clumsy edits. With keys (store/audit_signatures.py) each hash also carries an Ed25519 signature
made with a key the database never sees, and signed checkpoints kept elsewhere
(store/audit_checkpoints.py) pin the head against rollback and truncation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.audit import RETENTION_PURGED
from store.audit_signatures import SignatureWalk
from store.schema import GENESIS_HASH

AUDIT_SCOPE = "audit"  # details["scope"] of a checkpoint written by the audit purge


@dataclass(frozen=True)
class AuditRecord:
    id: int
    ts: datetime
    type: str
    actor: str | None
    ip: str | None
    request_id: str | None
    target: str | None
    outcome: str | None
    details: str  # canonical JSON text
    prev_hash: str
    hash: str
    key_id: str | None = None
    signature: str | None = None

    @property
    def details_dict(self) -> dict[str, Any]:
        return json.loads(self.details)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    first_id: int | None = (
        None  # the oldest record kept (older ones were purged under a checkpoint)
    )
    last_id: int | None = None
    # last_purged_id -> last_purged_hash, from the retention checkpoints met on the walk
    anchors: Mapping[int, str] = field(default_factory=dict)
    signatures: SignatureWalk | None = None  # what the walk saw of signatures, when keys were given

    def summary(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.checked} records checked"
        return f"audit chain BROKEN at record {self.first_bad_id}: {self.reason} ({self.checked} records checked)"


def canonical_json(value: Mapping[str, Any]) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept; non-JSON values become strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def record_hash(record: Any) -> str:
    """Hash of any object with AuditRecord's attributes (a dataclass or a database row)."""
    content = {
        "id": record.id,
        "ts": canonical_ts(record.ts),
        "type": record.type,
        "actor": record.actor,
        "ip": record.ip,
        "request_id": record.request_id,
        "target": record.target,
        "outcome": record.outcome,
        "details": record.details,
        "prev_hash": record.prev_hash,
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def verify_chain(
    records: Iterable[Any],
    head_id: int,
    head_hash: str,
    signatures: SignatureWalk | None = None,
) -> VerifyResult:
    """Walk records in id order; report the first one that was altered, deleted or inserted, or
    (with `signatures`) whose signature is bad or missing."""
    checked = 0
    first = previous = None
    anchors: dict[int, str] = {}  # last_purged_id -> last_purged_hash, from retention checkpoints

    def _bad(record_id: int, reason: str) -> VerifyResult:
        return VerifyResult(
            ok=False,
            checked=checked,
            first_bad_id=record_id,
            reason=reason,
            first_id=first.id if first is not None else None,
            anchors=anchors,
            signatures=signatures,
        )

    for record in records:
        checked += 1
        if record_hash(record) != record.hash:
            return _bad(record.id, "record content was altered (hash mismatch)")
        if previous is None:
            first = record
        elif record.id != previous.id + 1:
            return _bad(record.id, f"records {previous.id + 1}..{record.id - 1} were deleted")
        elif record.prev_hash != previous.hash:
            return _bad(record.id, "does not link to the previous record (inserted or replaced)")
        problem = signatures.check(record) if signatures is not None else None
        if problem is not None:
            return _bad(record.id, problem)
        if record.type == RETENTION_PURGED:
            details = json.loads(record.details)
            if details.get("scope") == AUDIT_SCOPE:
                anchors[int(details["last_purged_id"])] = str(details["last_purged_hash"])
        previous = record

    if first is not None:
        genesis = first.id == 1 and first.prev_hash == GENESIS_HASH
        if not genesis and anchors.get(first.id - 1) != first.prev_hash:
            return _bad(first.id, "older records were deleted without a retention checkpoint")
    last_id = previous.id if previous is not None else head_id
    last_hash = previous.hash if previous is not None else head_hash
    if previous is None and head_id != 0:
        # A purge always leaves its checkpoint behind, so an empty table means deletion.
        return _bad(head_id, "all records were deleted")
    if last_id < head_id:
        return _bad(last_id + 1, f"the newest records {last_id + 1}..{head_id} were deleted")
    if last_id > head_id or last_hash != head_hash:
        return _bad(head_id + 1 if last_id > head_id else last_id, _tail_reason(last_id, head_id))
    problem = signatures.finish() if signatures is not None else None
    if problem is not None:
        return _bad(*problem)
    return VerifyResult(
        ok=True,
        checked=checked,
        first_id=first.id if first is not None else None,
        last_id=last_id,
        anchors=anchors,
        signatures=signatures,
    )


def _tail_reason(last_id: int, head_id: int) -> str:
    if last_id > head_id:
        return f"records after {head_id} were added outside the audit log"
    return "the newest record does not match the chain head"
