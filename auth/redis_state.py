"""Short-lived auth state in Redis, so that any replica can serve a user's next request.

Three things must not live in one process once several replicas sit behind a load balancer: the OIDC
login state (the callback may land on another replica), the owner of each Gradio session hash (the
stream may be polled through another replica), and the back-channel logout `jti`s already seen (a
replayed logout token must be refused everywhere). Each key carries a TTL, so Redis forgets them
on its own. `[limits] storage = "redis://..."` turns them on together with the shared rate limits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from auth.gradio_binding import SessionHashBindings
from auth.login_state import LoginState, LoginStateStore
from auth.token_checks import OneTimeIds
from core.shared_state import connect, reaches_shared_state

# Bind on first use, refresh the owner's TTL, refuse anyone else: one atomic round trip per request.
_CLAIM = """
local owner = redis.call('get', KEYS[1])
if not owner then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if owner == ARGV[1] then
  redis.call('expire', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _digest(value: str) -> str:
    """Client-chosen values become fixed-length keys (and do not sit in Redis in the clear)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class RedisLoginStateStore:
    """Pending logins keyed by `state`; GETDEL makes each one usable exactly once, on any replica."""

    def __init__(
        self,
        client: redis.Redis,
        key_prefix: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._redis = client
        self._prefix = f"{key_prefix}:login-state:"
        self._clock = clock

    @reaches_shared_state
    def put(self, login: LoginState) -> None:
        ttl = math.ceil((login.expires_at - self._clock()).total_seconds())
        value = json.dumps(
            {
                "state": login.state,
                "nonce": login.nonce,
                "code_verifier": login.code_verifier,
                "redirect_uri": login.redirect_uri,
                "next_path": login.next_path,
                "expires_at": login.expires_at.isoformat(),
            }
        )
        self._redis.set(self._prefix + _digest(login.state), value, ex=max(ttl, 1))

    @reaches_shared_state
    def pop(self, state: str, now: datetime) -> LoginState | None:
        raw = self._redis.getdel(self._prefix + _digest(state))
        if raw is None:
            return None
        data = json.loads(raw)
        login = LoginState(**{**data, "expires_at": datetime.fromisoformat(data["expires_at"])})
        # Redis expiry is the garbage collector; the deadline itself follows the app's clock.
        if now >= login.expires_at or login.state != state:
            return None
        return login


class RedisSessionHashBindings:
    """Gradio session hash and event id -> owner, shared by every replica.

    Session hashes have a sliding TTL; event ids keep theirs from when Gradio handed them out.
    `now` is accepted for the protocol; expiry is Redis's own TTL.
    """

    def __init__(self, client: redis.Redis, key_prefix: str, ttl: timedelta) -> None:
        self._redis = client
        self._prefix = f"{key_prefix}:gradio-hash:"
        self._event_prefix = f"{key_prefix}:gradio-event:"
        self._ttl_seconds = max(int(ttl.total_seconds()), 1)
        self._claim = client.register_script(_CLAIM)

    @reaches_shared_state
    def claim(self, session_hash: str, user_key: str, now: datetime) -> bool:
        key = self._prefix + _digest(session_hash)
        return bool(self._claim(keys=[key], args=[user_key, self._ttl_seconds]))

    @reaches_shared_state
    def bind_event(self, event_id: str, user_key: str, now: datetime) -> None:
        self._redis.set(self._event_prefix + _digest(event_id), user_key, ex=self._ttl_seconds)

    @reaches_shared_state
    def event_owner(self, event_id: str, now: datetime) -> str | None:
        owner = self._redis.get(self._event_prefix + _digest(event_id))
        return owner.decode("utf-8") if isinstance(owner, bytes) else owner


class RedisOneTimeIds:
    """Remembers ids (a logout token's `jti`) for a while; the first use anywhere wins."""

    def __init__(self, client: redis.Redis, key_prefix: str, name: str = "logout-jti") -> None:
        self._redis = client
        self._prefix = f"{key_prefix}:{name}:"

    @reaches_shared_state
    def first_use(self, value: str, ttl_seconds: int) -> bool:
        """True the first time `value` is seen within `ttl_seconds`; False for a replay."""
        key = self._prefix + _digest(value)
        return bool(self._redis.set(key, b"1", nx=True, ex=max(ttl_seconds, 1)))


@dataclass(frozen=True)
class SharedAuthState:
    """The Redis-backed stores build_auth and the token verifier take; `close` at shutdown."""

    login_states: LoginStateStore
    bindings: SessionHashBindings
    logout_token_ids: OneTimeIds
    close: Callable[[], None]


def redis_auth_state(
    url: str,
    key_prefix: str,
    binding_ttl: timedelta,
    clock: Callable[[], datetime] = _utc_now,
) -> SharedAuthState:
    """All three stores on one Redis client (one connection pool)."""
    client = connect(url)
    return SharedAuthState(
        login_states=RedisLoginStateStore(client, key_prefix, clock),
        bindings=RedisSessionHashBindings(client, key_prefix, binding_ttl),
        logout_token_ids=RedisOneTimeIds(client, key_prefix),
        close=client.close,
    )


def shared_auth_state(
    storage: str, key_prefix: str, binding_ttl_hours: int
) -> SharedAuthState | None:
    """Redis stores when `[limits] storage` is a Redis URL; None (in-memory defaults) otherwise."""
    if storage.startswith("memory://"):
        return None
    return redis_auth_state(storage, key_prefix, timedelta(hours=binding_ttl_hours))
