"""Audit keys as an operator and an auditor handle them: formats, key ids, secrets kept out of
messages, production refusing an unsigned trail, and `launch.py audit keygen|verify` end to end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from store.audit_keys import (
    AuditKeyError,
    audit_keys,
    key_id,
    load_private_key,
    load_public_key,
    validate_audit_settings,
)
from store.database import create_database
from store.settings import AuditSettings
from tests.store.audit_forger import KeyPair, checkpoint_job, fill, signed_log, sql

ROOT = Path(__file__).resolve().parents[2]


def test_keys_load_from_base64_or_pem_and_the_id_is_a_short_hash_of_the_public_key(tmp_path):
    pair = KeyPair.new()
    private = load_private_key(pair.private, "k")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key_file = tmp_path / "audit.key"
    key_file.write_text(pem)

    from_file = audit_keys(AuditSettings(signing_key_file=key_file))
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    assert from_file.signer.key_id == key_id(private.public_key())
    assert from_file.signer.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert key_id(load_public_key(public_pem, "p")) == key_id(load_public_key(pair.public, "p"))


def test_the_key_file_signs_ahead_of_the_listed_keys_and_all_of_them_verify(tmp_path):
    newest, older = KeyPair.new(), KeyPair.new()
    key_file = tmp_path / "audit.key"
    key_file.write_text(newest.private + "\n")
    keys = audit_keys(
        AuditSettings(signing_key_file=key_file, signing_keys=(SecretStr(older.private),))
    )
    assert keys.signer.key_id == newest.keys().signer.key_id
    assert set(keys.verifier.key_ids) == {
        newest.keys().signer.key_id,
        older.keys().signer.key_id,
    }


@pytest.mark.parametrize(
    "bad", ["c2hvcnQ=", "not base64 at all!", "-----BEGIN PRIVATE KEY-----\nx"]
)
def test_a_bad_key_is_named_by_its_setting_never_echoed(bad):
    settings = AuditSettings(signing_keys=(SecretStr(bad),))
    with pytest.raises(
        AuditKeyError, match=r"audit\.signing_keys\[0\] is not an Ed25519"
    ) as refused:
        audit_keys(settings)
    assert bad not in str(refused.value)
    assert bad not in repr(settings)


def test_a_public_key_given_to_an_auditor_replaces_the_configured_keys_and_reads_no_secret():
    auditor = KeyPair.new()
    settings = AuditSettings(signing_key_file=Path("/nonexistent/audit.key"))
    keys = audit_keys(settings, [auditor.public])
    assert keys.signer is None
    assert keys.verifier.key_ids == (auditor.keys().signer.key_id,)


def production_settings(**audit) -> AuditSettings:
    return AuditSettings(**audit)


def test_production_refuses_an_unsigned_or_uncheckpointed_trail(tmp_path):
    pair = KeyPair.new()
    with pytest.raises(ValueError, match=r"audit\.signing_keys is missing.*audit keygen"):
        validate_audit_settings(
            production_settings(checkpoint_file=tmp_path / "c"), production=True
        )
    with pytest.raises(ValueError, match=r"audit\.checkpoint_file is missing"):
        validate_audit_settings(production_settings(signing_keys=[pair.private]), production=True)
    validate_audit_settings(
        production_settings(signing_keys=[pair.private], checkpoint_file=tmp_path / "c"),
        production=True,
    )
    validate_audit_settings(AuditSettings(), production=False)  # development may run unsigned


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keygen_prints_a_usable_private_key_and_its_public_key():
    made = launch("audit", "keygen")
    assert made.returncode == 0, made.stderr
    private = made.stdout.strip()
    assert len(made.stdout.splitlines()) == 1
    signer = audit_keys(AuditSettings(signing_keys=(SecretStr(private),))).signer
    public = made.stderr.strip().rsplit(" ", 1)[1]
    assert f"key id {signer.key_id}" in made.stderr
    assert key_id(load_public_key(public, "p")) == signer.key_id


def test_an_auditor_verifies_with_the_public_key_database_url_and_checkpoint_file_only(
    database, database_url, clock, tmp_path
):
    pair = KeyPair.new()
    log = signed_log(database, pair.keys(), clock)
    checkpoints = tmp_path / "checkpoints.jsonl"
    fill(log, 4)
    checkpoint_job(log, pair.keys(), checkpoints, clock).checkpoint()
    public_file = tmp_path / "audit.pub"
    public_file.write_text(pair.public + "\n")
    args = ("audit", "verify", "--database-url", database_url, "--checkpoints", str(checkpoints))

    good = launch(*args, "--public-key", pair.public)
    from_file = launch(*args, "--public-key", str(public_file))

    for run in (good, from_file):
        assert run.returncode == 0, run.stdout + run.stderr
        assert "signatures OK: 4 records signed" in run.stdout
        assert "checkpoints OK: 1 agree" in run.stdout
    sql(database, "UPDATE audit_log SET outcome = 'nothing happened' WHERE id = 2")
    broken = launch(*args, "--public-key", pair.public)
    assert broken.returncode == 1
    assert "BROKEN at record 2" in broken.stdout


def test_verify_says_plainly_what_is_not_configured(tmp_path):
    database_url = f"sqlite:///{tmp_path}/chat.db"
    assert launch("migrate", env={"CHAT_DATABASE__URL": database_url}).returncode == 0
    bare = launch("audit", "verify", "--database-url", database_url)
    assert bare.returncode == 0
    assert "no audit public key configured" in bare.stderr
    assert "no checkpoint file configured" in bare.stderr
    missing = launch(
        "audit",
        "verify",
        "--database-url",
        database_url,
        "--public-key",
        KeyPair.new().public,
        "--checkpoints",
        "/nonexistent/checkpoints.jsonl",
    )
    assert missing.returncode == 2
    assert "cannot read checkpoint file /nonexistent/checkpoints.jsonl" in missing.stdout


def test_keys_and_checkpoint_file_from_the_environment_serve_verify(tmp_path):
    pair = KeyPair.new()
    checkpoints = tmp_path / "checkpoints.jsonl"
    env = {
        "CHAT_DATABASE__URL": f"sqlite:///{tmp_path}/chat.db",
        "CHAT_AUDIT__SIGNING_KEYS": f'["{pair.private}"]',
        "CHAT_AUDIT__CHECKPOINT_FILE": str(checkpoints),
    }
    assert launch("migrate", env=env).returncode == 0
    database = create_database(env["CHAT_DATABASE__URL"])
    try:
        log = signed_log(database, pair.keys(), lambda: datetime.now(UTC))
        fill(log, 2)
        checkpoint_job(log, pair.keys(), checkpoints, lambda: datetime.now(UTC)).checkpoint()
    finally:
        database.dispose()

    run = launch("audit", "verify", env=env)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "signatures OK: 2 records signed" in run.stdout
    assert "checkpoints OK: 1 agree" in run.stdout
    assert pair.private not in run.stdout + run.stderr


def test_a_checkpoint_file_without_a_signing_key_stops_start_up(tmp_path):
    run = launch(
        "--demo",
        env={
            "CHAT_DATABASE__URL": f"sqlite:///{tmp_path}/chat.db",
            "CHAT_AUDIT__CHECKPOINT_FILE": str(tmp_path / "checkpoints.jsonl"),
        },
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "error: audit.checkpoint_file needs a signing key (audit.signing_keys)"
    )
