"""Ed25519 keys for the audit trail: the newest private key signs, every listed public key verifies.

The database never holds a private key, so someone who can rewrite the audit table (and re-hash the
chain) still cannot produce signatures that verify. A key id is a short hash of the public key,
stored beside each signature, so rotated keys are told apart without trying them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from store.settings import AuditSettings

# Domain separation: a record signature can never pass as a checkpoint signature, or the reverse.
RECORD_CONTEXT = b"chat.audit.record.v1\n"
CHECKPOINT_CONTEXT = b"chat.audit.checkpoint.v1\n"
KEY_ID_CHARS = 16


class AuditKeyError(ValueError):
    """A configured key cannot be read; the message never contains the key."""


def public_key_text(public: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64: what `audit keygen` prints and settings accept."""
    return base64.b64encode(_raw_public(public)).decode()


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public)).hexdigest()[:KEY_ID_CHARS]


def generate_private_key_text() -> str:
    """A new private key as base64 of its 32 raw bytes."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def load_private_key(text: str, where: str) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS#8) or base64 of the 32 raw bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_b64_32(text))
    except (ValueError, TypeError, binascii.Error):
        raise AuditKeyError(f"{where} is not an Ed25519 private key (PEM or base64)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{where} is not an Ed25519 private key (PEM or base64)")
    return key


def load_public_key(text: str, where: str) -> Ed25519PublicKey:
    """A public key from PEM (SubjectPublicKeyInfo) or base64 of the 32 raw bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(_b64_32(text))
    except (ValueError, TypeError, binascii.Error):
        raise AuditKeyError(f"{where} is not an Ed25519 public key (PEM or base64)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{where} is not an Ed25519 public key (PEM or base64)")
    return key


class AuditSigner:
    """Signs record hashes and checkpoints with one private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    def sign(self, context: bytes, message: str) -> str:
        return base64.b64encode(self._private.sign(context + message.encode())).decode()


class AuditVerifier:
    """Checks signatures against a set of trusted public keys, found by key id."""

    def __init__(self, public_keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in public_keys}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def knows(self, key: str | None) -> bool:
        return key in self._keys

    def valid(self, key: str, context: bytes, message: str, signature: str) -> bool:
        public = self._keys.get(key)
        if public is None:
            return False
        try:
            public.verify(base64.b64decode(signature, validate=True), context + message.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


@dataclass(frozen=True)
class AuditKeys:
    signer: AuditSigner | None  # None: records are written unsigned
    verifier: AuditVerifier | None  # None: no key to check signatures with


def private_keys(settings: AuditSettings) -> list[Ed25519PrivateKey]:
    """Configured private keys, newest first: the key file's key, then `signing_keys` in order."""
    keys = []
    if settings.signing_key_file is not None:
        keys.append(load_private_key(_read(settings.signing_key_file), "audit.signing_key_file"))
    for index, secret in enumerate(settings.signing_keys):
        keys.append(load_private_key(secret.get_secret_value(), f"audit.signing_keys[{index}]"))
    return keys


def audit_keys(settings: AuditSettings, extra_public: Iterable[str] | None = None) -> AuditKeys:
    """The signer (newest private key) and a verifier for every listed key.

    `extra_public`, when given (an auditor's `--public-key`), replaces the configured public keys.
    """
    if extra_public is not None:  # nothing secret is read
        publics = [load_public_key(text, "--public-key") for text in extra_public]
        return AuditKeys(signer=None, verifier=AuditVerifier(publics) if publics else None)
    privates = private_keys(settings)
    publics = [key.public_key() for key in privates]
    publics += [
        load_public_key(text, f"audit.verify_public_keys[{index}]")
        for index, text in enumerate(settings.verify_public_keys)
    ]
    return AuditKeys(
        signer=AuditSigner(privates[0]) if privates else None,
        verifier=AuditVerifier(publics) if publics else None,
    )


def validate_audit_settings(audit: AuditSettings, *, production: bool) -> None:
    """In production, raise ValueError (one line) unless the audit trail is signed and checkpointed:
    without both, whoever administers the database can rewrite it unnoticed (docs/audit.md)."""
    if not production:
        return
    if not audit.signing_keys and audit.signing_key_file is None:
        raise ValueError(
            "audit.signing_keys is missing; create a key with `python launch.py audit keygen` and set "
            "CHAT_AUDIT__SIGNING_KEYS='[\"<private key>\"]' or audit.signing_key_file"
        )
    if audit.checkpoint_file is None:
        raise ValueError(
            "audit.checkpoint_file is missing; set it to an append-only file on another volume or host "
            "(CHAT_AUDIT__CHECKPOINT_FILE)"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit.signing_key_file {path}: {exc.strerror}") from None


def _b64_32(text: str) -> bytes:
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
