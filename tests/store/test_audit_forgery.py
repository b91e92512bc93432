"""An insider with database write access and this code, but not the signing key, tries to rewrite the
audit trail. Every attempt that the plain hash chain would pass is caught by a signature or by the
signed checkpoints kept outside the database; `audit verify` names the first point of disagreement."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from store.audit_keys import audit_keys
from store.audit_log import AuditLog
from store.cli import verify_audit
from store.masking import Masker
from store.settings import AuditSettings
from tests.store.audit_forger import (
    KeyPair,
    checkpoint_job,
    fill,
    public_keys,
    rechain_from,
    restore_copy,
    rows,
    save_copy,
    signed_log,
    sql,
    truncate_after,
)


@pytest.fixture
def checkpoints(tmp_path):
    return tmp_path / "elsewhere" / "audit-checkpoints.jsonl"


@pytest.fixture
def job(log, key, checkpoints, clock):
    return checkpoint_job(log, key.keys(), checkpoints, clock)


def verify(database_url, key, checkpoints=None, capsys=None):
    """`audit verify` as an auditor runs it: the public key, the database, the checkpoint file."""
    files = [checkpoints] if checkpoints is not None else []
    code = verify_audit(database_url, key.public_only(), files)
    return code, capsys.readouterr().out if capsys is not None else ""


def test_an_honest_signed_and_checkpointed_trail_verifies(
    database_url, log, key, job, checkpoints, capsys
):
    fill(log, 5)
    job.checkpoint()
    fill(log, 3)
    job.checkpoint()

    code, out = verify(database_url, key, checkpoints, capsys)

    assert code == 0, out
    assert "audit chain OK: 8 records checked" in out
    assert "signatures OK: 8 records signed" in out
    assert "checkpoints OK: 2 agree with the database; newest: record 8" in out


def test_a_rewritten_and_rechained_record_has_a_bad_signature(
    database, database_url, log, key, capsys
):
    fill(log, 20)
    sql(database, "UPDATE audit_log SET actor = 'someone-else' WHERE id = 10")
    rechain_from(database, 10)

    assert log.verify().ok  # the hash chain alone is fooled: anyone can recompute it
    result = log.verify(key.public_only().verifier)
    assert (result.ok, result.first_bad_id) == (False, 10)
    assert "bad signature" in result.reason
    code, out = verify(database_url, key, capsys=capsys)
    assert code == 1
    assert "BROKEN at record 10: bad signature" in out


@pytest.mark.parametrize("written_on", [0, 6], ids=["rolled-back", "rolled-back-then-written-on"])
def test_a_rollback_to_a_saved_copy_is_caught_by_the_checkpoints(
    database, database_url, log, key, job, checkpoints, capsys, written_on
):
    fill(log, 5)
    job.checkpoint()
    copy = save_copy(database)  # the insider's backup
    fill(log, 5, actor="later")
    job.checkpoint()  # record 10 is vouched for outside the database

    restore_copy(database, copy)
    fill(log, written_on, actor="after-restore")  # the app carries on on the old copy

    assert log.verify(key.public_only().verifier).ok  # chain and signatures are all genuine
    code, out = verify(database_url, key, checkpoints, capsys)
    assert code == 1
    assert "audit chain OK" in out
    if written_on:
        assert "holds a different record 10: something in records 6..10 was rewritten" in out
    else:
        assert "vouches for record 10, but the database ends at record 5" in out
        assert "rolled back to an older copy" in out


def test_truncating_the_newest_records_is_caught_by_the_checkpoints(
    database, database_url, log, key, job, checkpoints, capsys
):
    fill(log, 10)
    job.checkpoint()

    truncate_after(database, 6)

    assert log.verify(key.public_only().verifier).ok
    code, out = verify(database_url, key, checkpoints, capsys)
    assert code == 1
    assert "vouches for record 10, but the database ends at record 6" in out


def test_records_after_the_newest_checkpoint_can_be_truncated_unnoticed(
    database, database_url, log, key, job, checkpoints, capsys
):
    # The documented window: what was written since the last checkpoint has no outside witness.
    fill(log, 5)
    job.checkpoint()
    fill(log, 3)
    truncate_after(database, 5)
    assert verify(database_url, key, checkpoints, capsys)[0] == 0


@pytest.mark.parametrize(
    ("stripped", "bad_id", "reason"),
    [
        ("id >= 1", 1, "signature removed (signed checkpoints show records from 1 on were signed)"),
        ("id >= 4", 4, "signature removed (an earlier record is signed)"),
    ],
    ids=["all", "newest"],
)
def test_stripped_signatures_are_detected(
    database, database_url, log, key, job, checkpoints, capsys, stripped, bad_id, reason
):
    fill(log, 6)
    job.checkpoint()
    sql(database, f"UPDATE audit_log SET actor = 'forged' WHERE id = {bad_id}")
    sql(database, f"UPDATE audit_log SET signature = NULL, key_id = NULL WHERE {stripped}")
    rechain_from(database, bad_id)

    code, out = verify(database_url, key, checkpoints, capsys)
    assert code == 1
    assert f"BROKEN at record {bad_id}: {reason}" in out


def test_stripping_every_signature_fails_even_without_the_checkpoint_file(
    database, database_url, log, key, capsys
):
    fill(log, 4)
    sql(database, "UPDATE audit_log SET signature = NULL, key_id = NULL")

    code, out = verify(database_url, key, capsys=capsys)

    assert code == 1
    assert "records 1..4 are unsigned and no signed checkpoint shows where signing began" in out


def test_a_signature_moved_to_another_record_does_not_verify(
    database, database_url, log, key, capsys
):
    fill(log, 3)
    [first] = rows(database, "id = 1")
    sql(database, "UPDATE audit_log SET signature = :s WHERE id = 2", s=first.signature)
    assert verify(database_url, key, capsys=capsys)[0] == 1


def test_legacy_unsigned_records_are_accepted_below_where_signing_began(
    database, database_url, key, clock, checkpoints, capsys
):
    fill(AuditLog(database, Masker(), clock), 3)  # written before there was a key
    log = signed_log(database, key.keys(), clock)
    job = checkpoint_job(log, key.keys(), checkpoints, clock)
    job.checkpoint()  # at start-up: signing begins after record 3
    fill(log, 3)
    job.checkpoint()

    code, out = verify(database_url, key, checkpoints, capsys)
    assert code == 0, out
    assert "3 records signed" in out
    assert "3 unsigned legacy records (1..3) written before signing began at record 4" in out

    # Without the checkpoints nothing tells legacy records from stripped ones.
    code, out = verify(database_url, key, capsys=capsys)
    assert code == 1 and "records 1..3 are unsigned" in out

    sql(database, "UPDATE audit_log SET signature = NULL, key_id = NULL WHERE id = 4")
    code, out = verify(database_url, key, checkpoints, capsys)
    assert code == 1 and "BROKEN at record 4: signature removed" in out


def test_rotated_keys_old_records_still_verify_with_the_old_public_key(
    database, database_url, clock, tmp_path, capsys
):
    old, new = KeyPair.new(), KeyPair.new()
    checkpoints = tmp_path / "checkpoints.jsonl"
    old_log = signed_log(database, old.keys(), clock)
    fill(old_log, 4)
    checkpoint_job(old_log, old.keys(), checkpoints, clock).checkpoint()
    # The new key signs; the old private key is gone, its public key is listed for verifying.
    rotated = audit_keys(
        AuditSettings(signing_keys=(SecretStr(new.private),), verify_public_keys=(old.public,))
    )
    assert rotated.signer is not None and rotated.signer.key_id == new.keys().signer.key_id
    new_log = signed_log(database, rotated, clock)
    fill(new_log, 3)
    checkpoint_job(new_log, rotated, checkpoints, clock).checkpoint()

    assert verify_audit(database_url, rotated, [checkpoints]) == 0
    assert verify_audit(database_url, public_keys(old.public, new.public), [checkpoints]) == 0
    out = capsys.readouterr().out
    assert "signatures OK: 7 records signed" in out
    assert f"{old.keys().signer.key_id} (4)" in out and f"{new.keys().signer.key_id} (3)" in out

    # Forgetting the old public key makes its records (and checkpoints) unverifiable, not silently fine.
    assert verify_audit(database_url, public_keys(new.public), [checkpoints]) == 1
    out = capsys.readouterr().out
    assert "BROKEN at record 1: signed with an unknown key" in out
    assert "checkpoints DISAGREE" in out and "unknown key" in out


def test_a_key_the_forger_made_up_is_refused(database, database_url, log, key, clock, capsys):
    fill(log, 3)
    forger = KeyPair.new()
    fill(signed_log(database, forger.keys(), clock), 1)
    code, out = verify(database_url, key, capsys=capsys)
    assert code == 1
    assert "BROKEN at record 4: signed with an unknown key" in out
