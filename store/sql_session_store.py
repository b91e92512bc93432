"""SessionStore in SQL, shared by every replica. Rows are keyed by SHA-256 of the session id, so a
database dump or backup cannot be replayed as a cookie."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update

from core.identity import User
from core.sessions import HANDLE_PREFIX, Session
from store.database import Database
from store.schema import SessionRow


def id_hash(session_id: str) -> str:
    """The row key. list_active() names sessions by HANDLE_PREFIX + this hash: the real id is not
    recoverable, and revoke() accepts the handle so an admin can end a listed session."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SqlSessionStore:
    """Implements core.sessions.SessionStore. get() returns expired sessions too; callers check
    Session.expired(now), as with MemorySessionStore; purge_expired() removes them."""

    def __init__(
        self, database: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = database
        self._clock = clock

    def create(self, session: Session) -> None:
        user = session.user
        row = SessionRow(
            id_hash=id_hash(session.id),
            user_key=user.key,
            issuer=user.issuer,
            subject=user.subject,
            email=user.email,
            name=user.name,
            groups=json.dumps(list(user.groups), ensure_ascii=False),
            is_admin=user.is_admin,
            via_token=user.via_token,
            created_at=session.created_at,
            last_seen=session.last_seen,
            idle_expires_at=session.idle_expires_at,
            absolute_expires_at=session.absolute_expires_at,
            ip=session.ip,
            user_agent=session.user_agent[:512] if session.user_agent else None,
            idp_session_id=session.idp_session_id,
            id_token=session.id_token,
        )
        with self._db.write() as db_session:
            db_session.merge(row)

    def get(self, session_id: str) -> Session | None:
        # Always hashed, even a "sha256:" handle: knowing a stored hash must not open a session.
        with self._db.read() as db_session:
            row = db_session.get(SessionRow, id_hash(session_id))
            return None if row is None else _to_session(row, session_id)

    def touch(self, session_id: str, last_seen: datetime, idle_expires_at: datetime) -> None:
        with self._db.write() as db_session:
            db_session.execute(
                update(SessionRow)
                .where(SessionRow.id_hash == id_hash(session_id))
                .values(last_seen=last_seen, idle_expires_at=idle_expires_at)
            )

    def revoke(self, session_id: str) -> bool:
        """End one session, given its id (logout) or a handle from list_active() (admin)."""
        if session_id.startswith(HANDLE_PREFIX):
            key = session_id.removeprefix(HANDLE_PREFIX)
        else:
            key = id_hash(session_id)
        with self._db.write() as db_session:
            return bool(
                db_session.execute(delete(SessionRow).where(SessionRow.id_hash == key)).rowcount
            )

    def revoke_user(self, user_key: str) -> int:
        with self._db.write() as db_session:
            return db_session.execute(
                delete(SessionRow).where(SessionRow.user_key == user_key)
            ).rowcount

    def revoke_idp_session(self, issuer: str, idp_session_id: str) -> int:
        with self._db.write() as db_session:
            result = db_session.execute(
                delete(SessionRow).where(
                    SessionRow.issuer == issuer, SessionRow.idp_session_id == idp_session_id
                )
            )
            return result.rowcount

    def list_active(self, now: datetime, user_key: str | None = None) -> list[Session]:
        """Unexpired sessions, newest first; each id is a revocable handle, not the cookie's id."""
        statement = select(SessionRow).where(
            SessionRow.idle_expires_at > now, SessionRow.absolute_expires_at > now
        )
        if user_key is not None:
            statement = statement.where(SessionRow.user_key == user_key)
        statement = statement.order_by(SessionRow.created_at.desc())
        with self._db.read() as db_session:
            return [
                _to_session(row, HANDLE_PREFIX + row.id_hash)
                for row in db_session.scalars(statement)
            ]

    def purge_expired(self, now: datetime | None = None) -> int:
        now = now or self._clock()
        with self._db.write() as db_session:
            result = db_session.execute(
                delete(SessionRow).where(
                    or_(SessionRow.idle_expires_at <= now, SessionRow.absolute_expires_at <= now)
                )
            )
            return result.rowcount


def _to_session(row: SessionRow, session_id: str) -> Session:
    user = User(
        issuer=row.issuer,
        subject=row.subject,
        email=row.email,
        name=row.name,
        groups=tuple(json.loads(row.groups)),
        is_admin=row.is_admin,
        via_token=row.via_token,
    )
    return Session(
        id=session_id,
        user=user,
        created_at=row.created_at,
        last_seen=row.last_seen,
        idle_expires_at=row.idle_expires_at,
        absolute_expires_at=row.absolute_expires_at,
        ip=row.ip,
        user_agent=row.user_agent,
        idp_session_id=row.idp_session_id,
        id_token=row.id_token,
    )
