"""Signed checkpoints of the audit chain head, kept outside the database.

A checkpoint says "record `last_id` had hash `last_hash` at `ts`", signed with the audit key. Written
to a file the database administrators cannot change, it shows a later rollback to an older copy of
the database, or a truncation of the newest records, that the chain itself cannot: both leave a
chain that links up perfectly. Each line is one self-contained JSON object; several replicas may
append to one file. `prev` is the hash of the same writer's previous checkpoint, so a writer's
sequence can be followed; `signed_from` is the first record id that had to be signed when the
writer started, which tells legacy unsigned records from stripped ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from store.audit_chain import canonical_json
from store.audit_keys import CHECKPOINT_CONTEXT, AuditSigner, AuditVerifier

CHECKPOINT_TYPE = "chat.audit.checkpoint"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    last_id: int
    last_hash: str
    ts: str  # ISO 8601, UTC
    prev: str | None  # hash of this writer's previous checkpoint; None for its first
    signed_from: int  # the first record id that had to carry a signature
    writer: str  # host and process, to tell replicas apart in a shared file
    key_id: str
    sig: str

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        fields = asdict(self)
        del fields["sig"]
        return {"type": CHECKPOINT_TYPE, "v": VERSION, **fields}

    def line(self) -> str:
        return canonical_json({**self.body(), "sig": self.sig})

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.line().encode()).hexdigest()


def sign_checkpoint(
    signer: AuditSigner,
    *,
    last_id: int,
    last_hash: str,
    ts: str,
    prev: str | None,
    signed_from: int,
    writer: str,
) -> Checkpoint:
    unsigned = Checkpoint(last_id, last_hash, ts, prev, signed_from, writer, signer.key_id, "")
    sig = signer.sign(CHECKPOINT_CONTEXT, canonical_json(unsigned.body()))
    return Checkpoint(last_id, last_hash, ts, prev, signed_from, writer, signer.key_id, sig)


@dataclass(frozen=True)
class CheckpointLine:
    """One line of a checkpoint file: a checkpoint whose signature verified, or why not."""

    where: str  # "path:line"
    checkpoint: Checkpoint | None
    problem: str | None = None


def parse_line(text: str, verifier: AuditVerifier, where: str) -> CheckpointLine:
    try:
        data = json.loads(text)
        checkpoint = Checkpoint(
            last_id=_typed(data, "last_id", int),
            last_hash=_typed(data, "last_hash", str),
            ts=_typed(data, "ts", str),
            prev=data["prev"] if data.get("prev") is None else _typed(data, "prev", str),
            signed_from=_typed(data, "signed_from", int),
            writer=_typed(data, "writer", str),
            key_id=_typed(data, "key_id", str),
            sig=_typed(data, "sig", str),
        )
        known = data.get("type") == CHECKPOINT_TYPE and data.get("v") == VERSION
    except (ValueError, KeyError, TypeError, AttributeError):
        return CheckpointLine(where, None, "not a checkpoint (malformed line)")
    if not known or set(data) != {*checkpoint.body(), "sig"}:
        return CheckpointLine(where, None, "not a checkpoint (unknown type, version or fields)")
    if not verifier.knows(checkpoint.key_id):
        return CheckpointLine(where, None, f"signed with an unknown key {checkpoint.key_id!r}")
    body = canonical_json(checkpoint.body())
    if not verifier.valid(checkpoint.key_id, CHECKPOINT_CONTEXT, body, checkpoint.sig):
        return CheckpointLine(where, None, "bad signature: the checkpoint line was altered")
    return CheckpointLine(where, checkpoint)


def read_checkpoint_file(path: Path, verifier: AuditVerifier) -> list[CheckpointLine]:
    """Every non-blank line of `path`, checked; raises OSError if the file cannot be read."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        parse_line(text, verifier, f"{path}:{number}")
        for number, text in enumerate(lines, start=1)
        if text.strip()
    ]


def append_line(path: Path, line: str) -> None:
    """Append one line with a single O_APPEND write and fsync: concurrent writers never interleave
    within a line on a local file system, and the line is on disk before we return."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def _typed(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(key)
    return value
