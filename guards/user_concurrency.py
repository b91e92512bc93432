"""One generation at a time per user, across replicas, so one user cannot occupy the CPU queue.

A `limits` window cannot express "held until released", so this is a small lock of our own:
Redis `SET key token NX EX ttl` (released only by its holder) or the same in memory.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from core.shared_state import SharedStateUnavailable, connect, reaches_shared_state
from guards.settings import LimitSettings

log = logging.getLogger("chat.limits")


class GenerationInProgress(Exception):
    """The user already has a reply being generated."""

    def __init__(self) -> None:
        super().__init__(
            "You already have a reply being generated. Wait for it to finish or press Stop, "
            "then send your message again."
        )


class GenerationLocks(Protocol):
    def acquire(self, key: str, token: str, ttl_seconds: int) -> bool: ...

    def release(self, key: str, token: str) -> None: ...

    def held(self, key: str) -> bool: ...

    def close(self) -> None: ...


class MemoryGenerationLocks:
    """Locks for a single process; the clock is injectable so expiry tests need no sleeping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}

    def acquire(self, key: str, token: str, ttl_seconds: int) -> bool:
        now = self._clock()
        with self._lock:
            holder = self._held.get(key)
            if holder is not None and holder[1] > now:
                return False
            self._held[key] = (token, now + ttl_seconds)
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            if self._held.get(key, ("", 0.0))[0] == token:
                del self._held[key]

    def held(self, key: str) -> bool:
        with self._lock:
            return self._held.get(key, ("", 0.0))[1] > self._clock()

    def close(self) -> None:
        return None


# Delete only if we still hold it: an expired lock may already belong to a newer generation.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisGenerationLocks:
    def __init__(self, url: str, key_prefix: str) -> None:
        self._redis = connect(url)  # bounded timeouts: a stuck Redis fails the turn, not hangs it
        self._prefix = f"{key_prefix}:generation:"
        self._release = self._redis.register_script(_RELEASE)

    @reaches_shared_state
    def acquire(self, key: str, token: str, ttl_seconds: int) -> bool:
        return bool(self._redis.set(self._prefix + key, token, nx=True, ex=ttl_seconds))

    @reaches_shared_state
    def release(self, key: str, token: str) -> None:
        self._release(keys=[self._prefix + key], args=[token])

    @reaches_shared_state
    def held(self, key: str) -> bool:
        return bool(self._redis.exists(self._prefix + key))

    def close(self) -> None:
        self._redis.close()


class UserConcurrency:
    """`with concurrency.hold(user.key): ...` around a generation; a second one raises.

    A release that cannot reach Redis never fails the reply it ends: it is logged and kept, and
    retried before the next acquire (at the latest the lock's TTL frees it)."""

    def __init__(self, locks: GenerationLocks, ttl_seconds: int) -> None:
        self._locks = locks
        self._ttl = ttl_seconds
        self._unreleased: dict[str, str] = {}  # user key -> token of a lock we failed to release
        self._pending = threading.Lock()

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> UserConcurrency:
        if settings.storage.startswith("memory://"):
            locks: GenerationLocks = MemoryGenerationLocks()
        else:
            locks = RedisGenerationLocks(settings.storage, settings.key_prefix)
        return cls(locks, settings.generation_lock_seconds)

    @contextmanager
    def hold(self, user_key: str) -> Iterator[None]:
        """Hold the user's generation slot for the block; raise GenerationInProgress if taken."""
        token = secrets.token_hex(16)
        self._retry_releases()
        if not self._locks.acquire(user_key, token, self._ttl):
            raise GenerationInProgress()
        try:
            yield
        finally:
            self._release(user_key, token)

    def running(self, user_key: str) -> bool:
        """Does the user have a reply being generated now (here or on another replica)?
        Raises SharedStateUnavailable."""
        return self._locks.held(user_key)

    def _release(self, user_key: str, token: str) -> None:
        try:
            self._locks.release(user_key, token)
        except SharedStateUnavailable:
            log.warning("shared state unreachable: a generation lock is released later")
            with self._pending:
                self._unreleased[user_key] = token

    def _retry_releases(self) -> None:
        with self._pending:
            pending, self._unreleased = self._unreleased, {}
        for user_key, token in pending.items():
            self._release(user_key, token)  # put back if still unreachable

    def close(self) -> None:
        self._locks.close()
