"""Shared state (Redis: limits, locks, login state): how it is opened, and what a caller sees when
it is unreachable.

Every Redis-backed method is wrapped with `reaches_shared_state`, so callers outside auth (the
chat service, the outage middleware) handle one domain exception and never import Redis types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from redis.exceptions import RedisError

P = ParamSpec("P")
R = TypeVar("R")

# A stuck Redis fails the request (503, see guards.outages) instead of hanging it.
TIMEOUT_SECONDS = 5.0


def connect(url: str) -> redis.Redis:
    """A client for the shared Redis, from `[limits] storage`; the connection opens at first use."""
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )


class SharedStateUnavailable(Exception):
    """Shared state could not be reached; the request must be refused, not run unchecked."""


def reaches_shared_state(method: Callable[P, R]) -> Callable[P, R]:
    """Raise SharedStateUnavailable (from the Redis error) when `method` cannot reach Redis."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except RedisError as exc:
            raise SharedStateUnavailable(type(exc).__name__) from exc

    return wrapper


class RedisProbe:
    """The readiness probe for shared state: does Redis answer a PING now?"""

    def __init__(self, url: str) -> None:
        self._redis = connect(url)

    def __call__(self) -> bool:
        try:
            return bool(self._redis.ping())
        except RedisError:
            return False

    def close(self) -> None:
        self._redis.close()
