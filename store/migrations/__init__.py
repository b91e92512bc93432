"""Alembic migrations; run through store.database.migrate."""
