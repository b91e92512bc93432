"""Store fixtures: every `database` test runs on SQLite (a temp file) and on the real PostgreSQL,
each PostgreSQL test in its own throw-away schema so parallel runs do not clash."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.audit import MemoryAuditSink
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import Database, create_database, migrate
from store.masking import Masker
from tests.backends import postgres_schema, postgres_url
from tests.store.audit_forger import KeyPair, signed_log


class FakeClock:
    """An injected clock: tests move time forward instead of sleeping."""

    def __init__(self, start: datetime = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with postgres_schema("store_test") as schema:
        yield schema


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/chat.db"
    return postgres_url(request.getfixturevalue("pg_schema"))


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Database]:
    database = create_database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    migrate(empty_database)
    return empty_database


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Any test that (indirectly) needs a database runs once per engine.
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def audit_sink() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def history(database: Database, audit_sink: MemoryAuditSink, clock: FakeClock) -> ChatHistory:
    return ChatHistory(database, audit_sink, clock)


@pytest.fixture
def audit_log(database: Database, clock: FakeClock) -> AuditLog:
    return AuditLog(database, Masker(), clock)


@pytest.fixture
def key() -> KeyPair:
    """A fresh audit signing key pair (the forger never has it)."""
    return KeyPair.new()


@pytest.fixture
def log(database: Database, key: KeyPair, clock: FakeClock) -> AuditLog:
    """An audit log that signs its records with `key`."""
    return signed_log(database, key.keys(), clock)
