"""SQLAlchemy tables. Migrations in store/migrations/ create exactly these (a test compares them)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GENESIS_HASH = "0" * 64

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite has no time zones, so it stores naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex, never sequential
    owner_key: Mapped[str] = mapped_column(String(512))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Set by a delete: hidden from its owner at once, restorable until purged after the undo window.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)

    __table_args__ = (Index("ix_conversations_owner_updated", "owner_key", "updated_at"),)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # Indexed: the recovery sweep looks for the few "streaming" rows among all messages.
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Last write of content or status; a streaming reply's lease (store/reply_recovery.py).
    # NULL on rows written before the column existed, none of which is streaming.
    saved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Why a reply ended short (an i18n key such as "engine_error"), translated when shown.
    notice: Mapped[str | None] = mapped_column(String(32))


class UserPreferenceRow(Base):
    """What a person chose for themselves (the page language), kept across browsers and devices."""

    __tablename__ = "user_preferences"

    user_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditRow(Base):
    """Append-only; `id` is assigned under the chain lock so it has no gaps."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(512), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    target: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON text, already masked
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Ed25519 signature of `hash` (base64) and the signing key's id; NULL when written without a key.
    key_id: Mapped[str | None] = mapped_column(String(16))
    signature: Mapped[str | None] = mapped_column(String(88))


class AuditHeadRow(Base):
    """One row: the newest record's id and hash. Locking it serializes appends across replicas."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class SessionRow(Base):
    """Server-side login sessions; the key is SHA-256 of the cookie's id, so a DB reader cannot use it."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(1024), index=True)
    issuer: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(512))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(256))
    groups: Mapped[str] = mapped_column(Text)  # JSON list
    is_admin: Mapped[bool] = mapped_column(Boolean)
    via_token: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    idle_expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    absolute_expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    idp_session_id: Mapped[str | None] = mapped_column(String(256))
    id_token: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_sessions_idp_session", "issuer", "idp_session_id"),)


class ApiTokenRow(Base):
    """Personal API tokens. Only SHA-256 of the secret is kept; `id` is the public handle for revoking."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    owner_key: Mapped[str] = mapped_column(String(1024), index=True)
    # The owner as they were at creation: a script has no IdP login to refresh these.
    issuer: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(512))
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256))
    groups: Mapped[str] = mapped_column(Text)  # JSON list
    admin_scope: Mapped[bool] = mapped_column(Boolean)
    source_cidrs: Mapped[str] = mapped_column(Text)  # JSON list; [] = any address api_allow permits
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_ip: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(1024))
