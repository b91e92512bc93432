"""Migrations on an empty database, and the SQLite connection settings that concurrency relies on."""

from __future__ import annotations

import os

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from store.database import create_database, migrate
from store.schema import GENESIS_HASH, Base


def test_migrations_create_every_table_on_an_empty_database(empty_database):
    assert not empty_database.has_schema()

    migrate(empty_database)

    tables = set(inspect(empty_database.engine).get_table_names())
    assert {"conversations", "messages", "audit_log", "audit_head", "sessions"} <= tables
    with empty_database.read() as session:
        head = session.execute(text("SELECT last_id, last_hash FROM audit_head")).one()
    assert tuple(head) == (0, GENESIS_HASH)


def test_migrations_match_the_models(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrating_twice_is_harmless(database):
    migrate(database)
    with database.read() as session:
        heads = session.execute(text("SELECT count(*) FROM audit_head")).scalar_one()
    assert heads == 1


def test_migrate_works_from_any_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = create_database(f"sqlite:///{tmp_path}/elsewhere/chat.db")
    try:
        migrate(database)
        assert database.has_schema()
    finally:
        database.dispose()


def test_sqlite_file_gets_its_directory_wal_and_foreign_keys(tmp_path):
    path = tmp_path / "nested" / "data" / "chat.db"
    database = create_database(f"sqlite:///{path}")
    try:
        migrate(database)
        with database.read() as session:
            journal = session.execute(text("PRAGMA journal_mode")).scalar_one()
            foreign_keys = session.execute(text("PRAGMA foreign_keys")).scalar_one()
        assert os.path.isfile(path)
        assert journal == "wal"
        assert foreign_keys == 1
    finally:
        database.dispose()
