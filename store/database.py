"""Engine and sessions for SQLite (default) or PostgreSQL, and Alembic migrations run from code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.store_outage import StoreUnreachable
from store.settings import DatabaseSettings

log = logging.getLogger("chat.store")
CONNECT_TIMEOUT_SECONDS = 5
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; its transaction is rolled back on exit."""
        with _reachable(), self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session committed on success; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so two writers wait for each other instead of failing with "database is locked"."""
        with _reachable(), self.sessions() as session:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                with suppress(SQLAlchemyError):  # a lost connection cannot roll back either
                    session.rollback()
                raise

    def reachable(self) -> bool:
        """True if the database answers a trivial query now (the readiness probe)."""
        try:
            with self.read() as session:
                session.execute(text("SELECT 1"))
        except StoreUnreachable:
            return False
        return True

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table("audit_head")

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _reachable() -> Iterator[None]:
    """Connection failures (refused, reset, timed out; SQLite's lock wait running out) become
    StoreUnreachable; errors about the data itself stay what they are."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise StoreUnreachable(type(exc.orig or exc).__name__) from exc


def create_database(url: str, *, echo: bool = False) -> Database:
    """Build the engine; for SQLite also create the file's directory and turn on WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url, parsed.database, echo)
    else:
        # pre-ping: connections the server dropped (a restart) are replaced, not handed out;
        # a connect timeout: an unreachable server fails the request instead of hanging it.
        engine = create_engine(
            url,
            echo=echo,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def _sqlite_engine(url: str, path: str | None, echo: bool) -> Engine:
    in_memory = not path or path == ":memory:" or path.startswith("file::memory:")
    if not in_memory:
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

    # SQLAlchemy's recipe: let us emit BEGIN ourselves, because the sqlite3 module's implicit
    # transactions start too late to lock, and cannot be made IMMEDIATE per transaction.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def alembic_config(database: Database) -> Config:
    """An Alembic config built in code, so migrations work from any current directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["engine"] = database.engine
    return config


class DatabaseUnavailable(Exception):
    """The database cannot be used at start-up; the message says what to fix (no stack trace)."""


def open_database(settings: DatabaseSettings, *, migrate_now: bool = False) -> Database:
    """The configured database, migrated if asked or configured; refuses one without tables."""
    database = create_database(settings.url)
    try:
        if settings.migrate_on_start or migrate_now:
            migrate(database)
        elif not database.has_schema():
            raise DatabaseUnavailable(
                "the database has no tables: run `python launch.py migrate` first"
            )
    except DatabaseUnavailable:
        database.dispose()
        raise
    except Exception as exc:  # connection refused, bad credentials, ...
        database.dispose()
        log.debug("database start-up failed", exc_info=True)
        raise DatabaseUnavailable(
            f"cannot use the database ({type(exc).__name__}); check [database] url "
            "(or CHAT_DATABASE__URL) and that the server is reachable"
        ) from None
    return database


def migrate(database: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (idempotent); `launch.py migrate` and start-up call this."""
    command.upgrade(alembic_config(database), revision)
