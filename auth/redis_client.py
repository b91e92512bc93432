"""The one way this app opens a Redis client: from `[limits] storage`, with bounded timeouts."""

from __future__ import annotations

import redis

# A stuck Redis fails the request (503, see shared_state_outage) instead of hanging it.
TIMEOUT_SECONDS = 5.0


def connect(url: str) -> redis.Redis:
    """A client for the shared Redis; the connection opens at first use."""
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
