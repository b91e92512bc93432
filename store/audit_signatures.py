"""Record signatures: each record's chain hash signed with the newest audit key, judged on a walk.

Records written before signing began (or by a deployment without a key) carry no signature. Such
records are accepted only below `signed_from`, the first id that signed checkpoints say had to be
signed; without checkpoints nothing marks that point, so unsigned records fail rather than let a
forger strip signatures and pass them off as old ones.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from store.audit_keys import RECORD_CONTEXT, AuditSigner, AuditVerifier


def sign_record(signer: AuditSigner, record_hash: str) -> tuple[str, str]:
    """(key id, signature) for a record whose chain hash is `record_hash`."""
    return signer.key_id, signer.sign(RECORD_CONTEXT, record_hash)


class SignatureWalk:
    """Checks signatures record by record, in id order, during one walk of the chain."""

    def __init__(self, verifier: AuditVerifier, signed_from: int | None) -> None:
        self._verifier = verifier
        self.signed_from = signed_from
        self.by_key: Counter[str] = Counter()
        self.unsigned_first: int | None = None
        self.unsigned_last: int | None = None

    @property
    def signed(self) -> int:
        return sum(self.by_key.values())

    @property
    def unsigned(self) -> int:
        if self.unsigned_first is None or self.unsigned_last is None:
            return 0
        return self.unsigned_last - self.unsigned_first + 1

    def check(self, record: Any) -> str | None:
        """Why this record's signature is unacceptable, or None."""
        if record.signature is None:
            if self.by_key:
                return "signature removed (an earlier record is signed)"
            if self.signed_from is not None and record.id >= self.signed_from:
                return (
                    f"signature removed (signed checkpoints show records from {self.signed_from} "
                    "on were signed)"
                )
            if self.unsigned_first is None:
                self.unsigned_first = record.id
            self.unsigned_last = record.id
            return None
        if not self._verifier.knows(record.key_id):
            return (
                f"signed with an unknown key {record.key_id!r} (not among the trusted public keys)"
            )
        if not self._verifier.valid(record.key_id, RECORD_CONTEXT, record.hash, record.signature):
            return "bad signature: the record was rewritten without the signing key"
        self.by_key[record.key_id] += 1
        return None

    def finish(self) -> tuple[int, str] | None:
        """After the walk: unsigned records nothing vouches for, as (first id, reason)."""
        if self.unsigned_first is None or self.signed_from is not None:
            return None
        return self.unsigned_first, (
            f"records {self.unsigned_first}..{self.unsigned_last} are unsigned and no signed "
            "checkpoint shows where signing began (signatures stripped, or legacy records: "
            "pass the checkpoint file)"
        )

    def summary(self) -> str:
        keys = ", ".join(f"{key} ({count})" for key, count in sorted(self.by_key.items()))
        line = f"signatures OK: {self.signed} records signed"
        line += f" by key {keys}" if keys else ""
        if self.unsigned:
            line += (
                f"; {self.unsigned} unsigned legacy records ({self.unsigned_first}.."
                f"{self.unsigned_last}) written before signing began at record {self.signed_from}"
            )
        return line
