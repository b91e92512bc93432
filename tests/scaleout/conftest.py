"""Scale-out fixtures: the real Redis on loopback, a key prefix of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A fresh namespace; every key under it is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def other_replica() -> Iterator[redis.Redis]:
    """A second, independent client: what another app process would hold."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()
