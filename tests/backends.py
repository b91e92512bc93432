"""The real PostgreSQL and Redis the tests use (both on loopback, as on CI), in throw-away namespaces."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import redis

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def postgres_url(schema: str) -> str:
    """An SQLAlchemy URL whose connections work inside `schema`."""
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A fresh schema in the test database (its name); dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def redis_namespace(prefix: str) -> Iterator[str]:
    """A key prefix of our own in the shared Redis; every key under it is deleted afterwards."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        yield namespace
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{namespace}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
