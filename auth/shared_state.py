"""What a caller of shared state (Redis: limits, locks, login state) sees when it is unreachable.

Every Redis-backed method is wrapped with `reaches_shared_state`, so callers outside auth (the
chat service, the outage middleware) handle one domain exception and never import Redis types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from redis.exceptions import RedisError

P = ParamSpec("P")
R = TypeVar("R")


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
