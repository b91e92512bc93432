"""The admin commands launch.py runs without the web stack: `migrate`, `audit verify|keygen`.

audit verify checks, in order: the hash chain (content, links, purges, head), each record's signature
against the trusted public keys, and the database against the signed checkpoints kept outside it.
It needs only public keys, so an auditor can run it without the private key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.store_outage import StoreUnreachable
from store.audit_checkpoints import CheckpointLine, read_checkpoint_file
from store.audit_keys import (
    AuditKeys,
    audit_keys,
    generate_private_key_text,
    key_id,
    load_private_key,
)
from store.audit_keys import public_key_text as public_text
from store.audit_log import AuditLog
from store.checkpoint_check import compare, signed_from, valid_checkpoints
from store.database import DatabaseUnavailable, create_database, open_database
from store.settings import AuditSettings, DatabaseSettings


def verify_audit(
    database_url: str,
    keys: AuditKeys | None = None,
    checkpoint_files: Sequence[Path] = (),
) -> int:
    """Print the findings; return 0 if everything agrees, 1 on any disagreement, 2 if the trail,
    a key or a checkpoint file cannot be read."""
    where = make_url(database_url).render_as_string(hide_password=True)
    verifier = keys.verifier if keys is not None else None
    if verifier is None:
        _note(
            "no audit public key configured: signatures are not checked "
            "(set audit.signing_keys / audit.verify_public_keys, or pass --public-key)"
        )
    lines: list[CheckpointLine] = []
    if not checkpoint_files:
        _note(
            "no checkpoint file configured: a rollback or a truncation of the newest records "
            "cannot be detected (set audit.checkpoint_file, or pass --checkpoints)"
        )
    elif verifier is None:
        print("audit verify: checkpoints cannot be checked without a public key (--public-key)")
        return 2
    for path in checkpoint_files:
        try:
            lines += read_checkpoint_file(path, verifier)
        except OSError as exc:
            print(f"audit verify: cannot read checkpoint file {path}: {exc.strerror or exc}")
            return 2
    checkpoints = valid_checkpoints(lines)
    database = create_database(database_url)
    try:
        if not database.has_schema():
            print(f"audit verify: no audit trail in {where} (run `python launch.py migrate` first)")
            return 2
        audit_log = AuditLog(database)
        result = audit_log.verify(verifier, signed_from(checkpoints))
        head_id, _ = audit_log.head()
        hashes = audit_log.hashes(cp.last_id for _, cp in checkpoints)
    except (SQLAlchemyError, StoreUnreachable) as exc:
        print(f"audit verify: cannot read {where}: {type(exc).__name__}")
        return 2
    finally:
        database.dispose()
    print(result.summary())
    if result.ok and result.signatures is not None:
        print(result.signatures.summary())
    if not checkpoint_files:
        return 0 if result.ok else 1
    comparison = compare(lines, result, head_id, hashes)
    for problem in comparison.problems:
        print(f"checkpoints DISAGREE: {problem}")
    if comparison.ok:
        print(comparison.summary())
    for note in comparison.notes:
        print(note)
    return 0 if result.ok and comparison.ok else 1


def migrate_command(settings: DatabaseSettings) -> int:
    """`migrate`: bring the schema up to date."""
    try:
        database = open_database(settings, migrate_now=True)
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    database.dispose()
    print("database schema is up to date")
    return 0


def verify_command(
    database_url: str,
    settings: AuditSettings,
    public_keys: Sequence[str] = (),
    checkpoint_files: Sequence[Path] = (),
) -> int:
    """`audit verify`: keys and checkpoint files from the options, else from settings."""
    try:
        keys = audit_keys(settings, public_key_args(public_keys) if public_keys else None)
    except (ValueError, OSError) as exc:
        print(f"audit verify: {exc}", file=sys.stderr)
        return 2
    configured = settings.checkpoint_file
    files = list(checkpoint_files) or ([configured] if configured is not None else [])
    return verify_audit(database_url, keys, files)


def keygen() -> int:
    """Print a new private key on stdout (for a secret store or key file) and its public key and id
    on stderr (for auditors and audit.verify_public_keys)."""
    private = generate_private_key_text()
    public = load_private_key(private, "the new key").public_key()
    print(private)
    print(f"public key (key id {key_id(public)}): {public_text(public)}", file=sys.stderr)
    return 0


def public_key_args(values: Sequence[str]) -> list[str]:
    """`--public-key` values: the key itself (base64 or PEM), or the path of a file holding it."""
    return [
        Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
        for value in values
    ]


def _note(text: str) -> None:
    print(f"audit verify: {text}", file=sys.stderr)
