"""Scale-out fixtures: the real Redis on loopback, a key prefix of its own per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.backends import REDIS_URL, redis_namespace


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A fresh namespace; every key under it is deleted afterwards."""
    with redis_namespace("test") as prefix:
        yield prefix


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
