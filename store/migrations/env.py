"""Alembic environment: the engine is handed over by store.database.migrate, never read from a file."""

from __future__ import annotations

from alembic import context

from store.schema import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together: the second waits, then finds the schema up to date.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7355608001)")
        context.run_migrations()
