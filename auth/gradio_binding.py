"""Who owns each Gradio session hash and each queued event.

Gradio keys queue/data, heartbeat and cancel on a browser-chosen `session_hash`, and cancel and reset
on an `event_id`: a user who learned another's could read or cancel that stream. The Gradio door
(auth.gradio_doors) records the owner of a session hash at first use and of an event id when Gradio
hands it out, and refuses anyone else. This file stores those owners, in memory for one process;
auth.redis_state holds them in Redis for replicas.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol


class SessionHashBindings(Protocol):
    def claim(self, session_hash: str, user_key: str, now: datetime) -> bool:
        """True if `session_hash` is unbound (it becomes `user_key`'s) or already `user_key`'s."""
        ...

    def bind_event(self, event_id: str, user_key: str, now: datetime) -> None:
        """Record that Gradio gave `event_id` to `user_key` (event ids are Gradio's, never the client's)."""
        ...

    def event_owner(self, event_id: str, now: datetime) -> str | None:
        """The user `event_id` was given to, or None if it is unknown or expired."""
        ...


class _ExpiringOwners:
    """key -> (owner, expiry), swept when full; refuses new keys rather than forget a live owner."""

    def __init__(self, ttl: timedelta, max_entries: int) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._owners: dict[str, tuple[str, datetime]] = {}

    def owner(self, key: str, now: datetime) -> str | None:
        current = self._owners.get(key)
        return current[0] if current is not None and current[1] > now else None

    def set(self, key: str, owner: str, now: datetime) -> bool:
        if key not in self._owners and len(self._owners) >= self._max_entries:
            self._owners = {k: v for k, v in self._owners.items() if v[1] > now}
            if len(self._owners) >= self._max_entries:
                return False
        self._owners[key] = (owner, now + self._ttl)
        return True


class MemorySessionHashBindings:
    """One-process bindings with a sliding TTL for session hashes and a fixed one for events."""

    def __init__(self, ttl: timedelta, max_entries: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._hashes = _ExpiringOwners(ttl, max_entries)
        self._events = _ExpiringOwners(ttl, max_entries)

    def claim(self, session_hash: str, user_key: str, now: datetime) -> bool:
        with self._lock:
            owner = self._hashes.owner(session_hash, now)
            if owner is not None and owner != user_key:
                return False
            return self._hashes.set(session_hash, user_key, now)

    def bind_event(self, event_id: str, user_key: str, now: datetime) -> None:
        with self._lock:
            self._events.set(event_id, user_key, now)

    def event_owner(self, event_id: str, now: datetime) -> str | None:
        with self._lock:
            return self._events.owner(event_id, now)
