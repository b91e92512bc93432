"""Personal API tokens in SQL: issue a secret once, keep only its SHA-256, look it up, revoke it.

The secret is 256 random bits, so an unkeyed SHA-256 is enough: nothing to brute-force, and a
database dump cannot be replayed as a token. The prefix lets secret scanners recognise leaked ones.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update

from core.api_tokens import TOKEN_PREFIX, ApiToken, NewToken
from core.identity import User
from store.database import Database
from store.schema import ApiTokenRow

_SECRET_BYTES = 32


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiTokenStore:
    def __init__(
        self, database: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = database
        self._clock = clock

    def create(
        self,
        owner: User,
        name: str,
        expires_at: datetime,
        source_cidrs: tuple[str, ...] = (),
        admin_scope: bool = False,
    ) -> NewToken:
        """Store a new token for `owner`; the caller has validated name, expiry and ranges."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        row = ApiTokenRow(
            id=uuid.uuid4().hex,
            secret_hash=secret_hash(secret),
            name=name,
            owner_key=owner.key,
            issuer=owner.issuer,
            subject=owner.subject,
            email=owner.email,
            display_name=owner.name,
            groups=json.dumps(list(owner.groups), ensure_ascii=False),
            admin_scope=admin_scope,
            source_cidrs=json.dumps(list(source_cidrs)),
            created_at=self._clock(),
            expires_at=expires_at,
        )
        with self._db.write() as session:
            session.add(row)
        return NewToken(secret=secret, token=_to_token(row))

    def find(self, secret: str) -> ApiToken | None:
        """The token with this secret, revoked and expired ones included (the caller says why not)."""
        with self._db.read() as session:
            row = session.scalars(
                select(ApiTokenRow).where(ApiTokenRow.secret_hash == secret_hash(secret))
            ).one_or_none()
            return None if row is None else _to_token(row)

    def get(self, token_id: str) -> ApiToken | None:
        with self._db.read() as session:
            row = session.get(ApiTokenRow, token_id)
            return None if row is None else _to_token(row)

    def list_tokens(self, owner_key: str | None = None, limit: int = 500) -> list[ApiToken]:
        """Tokens newest first: one owner's, or everyone's (admins) when owner_key is None."""
        statement = select(ApiTokenRow).order_by(ApiTokenRow.created_at.desc()).limit(limit)
        if owner_key is not None:
            statement = statement.where(ApiTokenRow.owner_key == owner_key)
        with self._db.read() as session:
            return [_to_token(row) for row in session.scalars(statement)]

    def revoke(self, token_id: str, by: str, owner_key: str | None = None) -> ApiToken | None:
        """Revoke one live token (only `owner_key`'s unless None); None if there is no such token."""
        statement = update(ApiTokenRow).where(
            ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None)
        )
        if owner_key is not None:
            statement = statement.where(ApiTokenRow.owner_key == owner_key)
        with self._db.write() as session:
            done = session.execute(statement.values(revoked_at=self._clock(), revoked_by=by))
        return self.get(token_id) if done.rowcount else None

    def revoke_owned(
        self, owner_key: str, by: str, admin_scope_only: bool = False
    ) -> list[ApiToken]:
        """Revoke every live token of `owner_key` (or only the admin-scope ones); those revoked."""
        now, revoked = self._clock(), []
        for token in self.list_tokens(owner_key):
            if token.status(now) != "active" or (admin_scope_only and not token.admin_scope):
                continue
            done = self.revoke(token.id, by, owner_key)
            if done is not None:  # not revoked meanwhile
                revoked.append(done)
        return revoked

    def mark_used(self, token_id: str, when: datetime, ip: str | None) -> None:
        with self._db.write() as session:
            session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id)
                .values(last_used_at=when, last_ip=ip[:64] if ip else None)
            )


def _to_token(row: ApiTokenRow) -> ApiToken:
    owner = User(
        issuer=row.issuer,
        subject=row.subject,
        email=row.email,
        name=row.display_name,
        groups=tuple(json.loads(row.groups)),
        is_admin=row.admin_scope,
        via_token=row.name,
    )
    return ApiToken(
        id=row.id,
        name=row.name,
        owner=owner,
        created_at=row.created_at,
        expires_at=row.expires_at,
        source_cidrs=tuple(json.loads(row.source_cidrs)),
        last_used_at=row.last_used_at,
        last_ip=row.last_ip,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )
