"""The Redis stores against the real Redis: what one replica writes, another replica sees once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis

from auth.login_state import LoginState
from auth.redis_state import (
    RedisLoginStateStore,
    RedisOneTimeIds,
    RedisSessionHashBindings,
    shared_auth_state,
)
from tests.backends import REDIS_URL

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALICE, MALLORY = "https://idp.example|alice", "https://idp.example|mallory"


def login(state: str = "state-abc", ttl: int = 600) -> LoginState:
    return LoginState(
        state=state,
        nonce="nonce-1",
        code_verifier="verifier-1",
        redirect_uri="http://127.0.0.1:7860/auth/callback",
        next_path="/?tab=history",
        expires_at=NOW + timedelta(seconds=ttl),
    )


def keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}:*"))


def race(count: int, attempt: Callable[[int], object]) -> list[object]:
    """Run `attempt(i)` in `count` threads released together; return their results."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = attempt(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_login_started_on_one_replica_completes_on_another_exactly_once(
    redis_client, other_replica, key_prefix
):
    RedisLoginStateStore(redis_client, key_prefix, clock=lambda: NOW).put(login())
    replica_b = RedisLoginStateStore(other_replica, key_prefix, clock=lambda: NOW)
    assert replica_b.pop("state-abc", NOW) == login()
    assert replica_b.pop("state-abc", NOW) is None  # a replayed callback
    assert keys(redis_client, key_prefix) == []


def test_concurrent_callbacks_with_one_state_let_only_one_through(redis_client, key_prefix):
    RedisLoginStateStore(redis_client, key_prefix, clock=lambda: NOW).put(login())
    stores = [RedisLoginStateStore(redis.Redis.from_url(REDIS_URL), key_prefix) for _ in range(8)]
    results = race(8, lambda i: stores[i].pop("state-abc", NOW))
    assert sum(r is not None for r in results) == 1


def test_expired_or_unknown_login_state_is_refused(redis_client, key_prefix):
    store = RedisLoginStateStore(redis_client, key_prefix, clock=lambda: NOW)
    store.put(login(ttl=60))
    assert store.pop("state-abc", NOW + timedelta(seconds=60)) is None
    assert store.pop("never-issued", NOW) is None


def test_login_state_key_expires_in_redis_and_does_not_name_the_state(redis_client, key_prefix):
    RedisLoginStateStore(redis_client, key_prefix, clock=lambda: NOW).put(login(ttl=600))
    [key] = keys(redis_client, key_prefix)
    assert b"state-abc" not in key
    assert 590 <= redis_client.ttl(key) <= 600


def test_first_user_of_a_session_hash_owns_it_on_every_replica(
    redis_client, other_replica, key_prefix
):
    replica_a = RedisSessionHashBindings(redis_client, key_prefix, timedelta(hours=1))
    replica_b = RedisSessionHashBindings(other_replica, key_prefix, timedelta(hours=1))
    assert replica_a.claim("hash123", ALICE, NOW)
    assert replica_b.claim("hash123", ALICE, NOW)
    assert not replica_b.claim("hash123", MALLORY, NOW)
    assert not replica_a.claim("hash123", MALLORY, NOW)
    assert replica_b.claim("another-hash", MALLORY, NOW)


def test_binding_ttl_slides_with_use_and_an_expired_binding_is_free_again(redis_client, key_prefix):
    bindings = RedisSessionHashBindings(redis_client, key_prefix, timedelta(hours=1))
    bindings.claim("hash123", ALICE, NOW)
    [key] = keys(redis_client, key_prefix)
    assert b"hash123" not in key
    redis_client.expire(key, 30)
    assert bindings.claim("hash123", ALICE, NOW)
    assert redis_client.ttl(key) > 3500  # the owner's use renewed it
    assert not bindings.claim("hash123", MALLORY, NOW)
    redis_client.delete(key)  # what Redis does when the TTL runs out
    assert bindings.claim("hash123", MALLORY, NOW)


def test_an_event_handed_out_on_one_replica_has_its_owner_on_every_replica(
    redis_client, other_replica, key_prefix
):
    replica_a = RedisSessionHashBindings(redis_client, key_prefix, timedelta(hours=1))
    replica_b = RedisSessionHashBindings(other_replica, key_prefix, timedelta(hours=1))
    assert replica_b.event_owner("event-1", NOW) is None
    replica_a.bind_event("event-1", ALICE, NOW)
    assert replica_b.event_owner("event-1", NOW) == ALICE
    assert replica_b.event_owner("event-2", NOW) is None
    # An event id and a session hash with the same text are different things.
    assert replica_b.claim("event-1", MALLORY, NOW)
    assert replica_a.event_owner("event-1", NOW) == ALICE
    event_keys = [k for k in keys(redis_client, key_prefix) if b"gradio-event" in k]
    assert len(event_keys) == 1 and b"event-1" not in event_keys[0]
    assert 3590 <= redis_client.ttl(event_keys[0]) <= 3600


def test_concurrent_first_claims_have_exactly_one_winner(key_prefix):
    clients = [redis.Redis.from_url(REDIS_URL) for _ in range(8)]
    stores = [RedisSessionHashBindings(c, key_prefix, timedelta(hours=1)) for c in clients]
    results = race(8, lambda i: stores[i].claim("fresh-hash", f"user-{i}", NOW))
    assert results.count(True) == 1


def test_a_logout_token_id_is_accepted_once_across_replicas(
    redis_client, other_replica, key_prefix
):
    assert RedisOneTimeIds(redis_client, key_prefix).first_use("jti-1", 420)
    assert not RedisOneTimeIds(other_replica, key_prefix).first_use("jti-1", 420)
    assert RedisOneTimeIds(other_replica, key_prefix).first_use("jti-2", 420)
    [key, _] = sorted(keys(redis_client, key_prefix))
    assert 410 <= redis_client.ttl(key) <= 420


def test_two_apps_sharing_one_redis_do_not_see_each_others_state(redis_client, key_prefix):
    ours = RedisLoginStateStore(redis_client, key_prefix, clock=lambda: NOW)
    theirs = RedisLoginStateStore(redis_client, key_prefix + "-other", clock=lambda: NOW)
    ours.put(login())
    assert theirs.pop("state-abc", NOW) is None
    assert ours.pop("state-abc", NOW) is not None
    hour = timedelta(hours=1)
    assert RedisSessionHashBindings(redis_client, key_prefix, hour).claim("h", ALICE, NOW)
    other_app = RedisSessionHashBindings(redis_client, key_prefix + "-other", hour)
    assert other_app.claim("h", MALLORY, NOW)
    for key in keys(redis_client, key_prefix + "-other"):
        redis_client.delete(key)


def test_memory_storage_keeps_the_in_process_defaults():
    assert shared_auth_state("memory://", "chat", 24) is None


def test_redis_storage_gives_stores_that_share_one_client(key_prefix):
    shared = shared_auth_state(REDIS_URL, key_prefix, 24)
    assert shared is not None
    now = datetime.now(UTC)
    pending = replace(login(), expires_at=now + timedelta(minutes=10))
    try:
        shared.login_states.put(pending)
        assert shared.login_states.pop("state-abc", now) == pending
        assert shared.bindings.claim("h", ALICE, now)
        assert not shared.bindings.claim("h", MALLORY, now)
        assert shared.logout_token_ids.first_use("j", 60)
    finally:
        shared.close()
