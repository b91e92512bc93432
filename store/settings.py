"""Settings sections for the database, retention, the audit keys and the prompt policy / masking rules."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


def compile_patterns(patterns: tuple[str, ...], key: str) -> tuple[re.Pattern[str], ...]:
    """Compile user-supplied regexes once, naming the bad one so the operator can fix settings.toml."""
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(
                f"{key}[{index}]: invalid regular expression {pattern!r}: {exc}"
            ) from None
        if regex.search("") is not None:
            # e.g. "a*" or "x|": it would match every text.
            raise ValueError(f"{key}[{index}]: regular expression {pattern!r} matches empty text")
        compiled.append(regex)
    return tuple(compiled)


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # SQLite file (parent directory created) or "postgresql+psycopg://user@host:5432/db".
    url: str = "sqlite:///data/chat.db"
    migrate_on_start: bool = True
    # Replies and audit records that finish while the database is unreachable wait in memory
    # (in order) until it is back; past this many, more are lost and logged. ~10 KB each at most.
    held_writes_max: int = Field(default=2000, ge=10, le=100_000)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError('must start with "sqlite://" or "postgresql+psycopg://"')
        return value


class RetentionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    history_days: int = Field(
        default=365, ge=0
    )  # conversations untouched this long are deleted; 0 = keep
    audit_days: int = Field(default=730, ge=0)  # audit records older than this are purged; 0 = keep
    purge_interval_hours: int = Field(default=24, ge=1)


class AuditSettings(BaseModel):
    """Signing keys and external checkpoints for the audit trail (docs/audit.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Ed25519 private keys, newest first (PEM or base64 of the raw 32 bytes): the first signs, all
    # verify. From the environment only: CHAT_AUDIT__SIGNING_KEYS='["<key>"]'.
    signing_keys: tuple[SecretStr, ...] = ()
    # A file holding one private key (e.g. a mounted secret); it signs, ahead of signing_keys.
    signing_key_file: Path | None = None
    # Public keys of retired signing keys, so records they signed still verify.
    verify_public_keys: tuple[str, ...] = ()
    # Signed chain heads are appended here (another volume or host); one JSON object per line.
    checkpoint_file: Path | None = None
    checkpoint_interval_seconds: int = Field(default=60, ge=1)
    checkpoint_every_records: int = Field(default=1000, ge=1)


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A prompt containing any keyword (case-insensitive) or matching any regex is refused before generation.
    block_keywords: tuple[str, ...] = ()
    block_patterns: tuple[str, ...] = ()
    # Extra regexes masked in the audit trail and logs, on top of the built-in ones.
    mask_patterns: tuple[str, ...] = ()

    @field_validator("block_keywords")
    @classmethod
    def _no_blank_keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not keyword.strip() for keyword in value):
            raise ValueError(
                "keywords must not be empty (an empty keyword would block every prompt)"
            )
        return value

    @field_validator("block_patterns")
    @classmethod
    def _block_patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        compile_patterns(value, "block_patterns")
        return value

    @field_validator("mask_patterns")
    @classmethod
    def _mask_patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        compile_patterns(value, "mask_patterns")
        return value
