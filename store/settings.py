"""Settings sections for the database, retention and the prompt policy / masking rules."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
