"""Stop a user's running reply from any tab or replica: a per-user stop counter in shared state.

Gradio's Stop only reaches the handler of the tab that pressed it. A user has at most one reply
generating (guards.user_concurrency), so "the user's running reply" is unique: Stop bumps the
user's counter, and a turn notes the counter as it starts and is stopped once it has grown. A
stop pressed before a turn started is already counted in what the turn notes: it never stops it.
Redis `INCR` (shared by replicas) or the same in memory. A turn running in the process where Stop
was pressed is also cancelled at once, not at its next token: it ends within a decoding step.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

from core.shared_state import SharedStateUnavailable, connect, reaches_shared_state
from guards.settings import LimitSettings

log = logging.getLogger("chat.limits")

# A counter's key lives this long after its last stop or turn start: far longer than any turn (the
# turn refreshes it as it starts), so it cannot vanish, and reset to 0, under a running turn.
COUNTER_TTL_SECONDS = 86_400


class StopCounters(Protocol):
    def read(self, key: str) -> int:
        """The key's count now (0 if none)."""
        ...

    def start(self, key: str) -> int:
        """The count as a turn starts; keeps the key alive for the turn."""
        ...

    def bump(self, key: str) -> None: ...

    def close(self) -> None: ...


class MemoryStopCounters:
    """Counters for a single process (a user's few bytes stay until it restarts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def read(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def start(self, key: str) -> int:
        return self.read(key)

    def bump(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def close(self) -> None:
        return None


class RedisStopCounters:
    def __init__(self, url: str, key_prefix: str) -> None:
        self._redis = connect(url)  # bounded timeouts: a stuck Redis is given up, not waited out
        self._prefix = f"{key_prefix}:stop:"

    @reaches_shared_state
    def read(self, key: str) -> int:
        return int(self._redis.get(self._prefix + key) or 0)

    @reaches_shared_state
    def start(self, key: str) -> int:
        return int(self._redis.getex(self._prefix + key, ex=COUNTER_TTL_SECONDS) or 0)

    @reaches_shared_state
    def bump(self, key: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._prefix + key).expire(self._prefix + key, COUNTER_TTL_SECONDS)
            pipe.execute()

    def close(self) -> None:
        self._redis.close()


class StopWatch:
    """One turn's look-out for a Stop pressed anywhere after it started; call it as often as a
    token arrives (one GET). Shared state unreachable: it stays quiet for the rest of the turn
    (the tab's own Stop still closes the turn), so a stuck Redis never slows the reply down."""

    def __init__(
        self,
        counters: StopCounters | None,
        user_key: str,
        since: int,
        cancel: Callable[[], None] = lambda: None,
    ) -> None:
        self._counters, self._key, self._since = counters, user_key, since
        self._cancel = cancel
        self._stopped = False

    def stop_now(self) -> None:
        """A Stop pressed in this process: the generation is cancelled at once, not at its next
        token (the engine ends it within its current decoding step)."""
        self._stopped = True
        self._cancel()

    def __call__(self) -> bool:
        """True once a stop was pressed for this user after the turn started."""
        if self._stopped or self._counters is None:
            return self._stopped
        try:
            self._stopped = self._counters.read(self._key) > self._since
        except SharedStateUnavailable:
            log.warning("shared state unreachable: a Stop from another tab may not reach a reply")
            self._counters = None
        return self._stopped


class StopRequests:
    """`stops.watch(user.key)` as a turn starts; `stops.request(user.key)` on Stop."""

    def __init__(self, counters: StopCounters) -> None:
        self._counters = counters
        # This process's running turns by user; a turn's watch goes with its turn (weakly held).
        self._local: dict[str, weakref.WeakSet[StopWatch]] = {}
        self._local_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> StopRequests:
        if settings.storage.startswith("memory://"):
            return cls(MemoryStopCounters())
        return cls(RedisStopCounters(settings.storage, settings.key_prefix))

    def request(self, user_key: str) -> None:
        """Stop the user's running reply, wherever it runs: here at once, on other replicas at
        its next token. Raises SharedStateUnavailable (after stopping it here)."""
        with self._local_lock:
            here = list(self._local.get(user_key, ()))
        for watch in here:
            watch.stop_now()
        self._counters.bump(user_key)

    def watch(self, user_key: str, cancel: Callable[[], None] = lambda: None) -> StopWatch:
        """The look-out for a turn starting now, which `cancel` stops; never raises (shared
        state unreachable: only a Stop pressed in this process reaches it)."""
        try:
            watch = StopWatch(self._counters, user_key, self._counters.start(user_key), cancel)
        except SharedStateUnavailable:
            log.warning("shared state unreachable: a Stop from another tab may not reach a reply")
            watch = StopWatch(None, user_key, 0, cancel)
        with self._local_lock:
            self._local.setdefault(user_key, weakref.WeakSet()).add(watch)
            for key in [k for k, watches in self._local.items() if not watches]:
                del self._local[key]  # users whose turns have all ended
        return watch

    def close(self) -> None:
        self._counters.close()
