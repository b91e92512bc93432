"""Rate limits and the one-generation-per-user rule, with memory:// and with the real Redis."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
import time_machine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.audit import RATE_LIMITED, MemoryAuditSink
from guards.client_ip import ClientAddressMiddleware
from guards.rate_limit_middleware import RateLimitMiddleware
from guards.rate_limits import Allowed, Limited, RateLimiter
from guards.settings import LimitSettings
from guards.user_concurrency import (
    GenerationInProgress,
    MemoryGenerationLocks,
    RedisGenerationLocks,
    UserConcurrency,
)
from tests.backends import REDIS_URL


@pytest.fixture
def redis_storage():
    """Settings kwargs for the real Redis, with a unique key prefix removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield {"storage": REDIS_URL, "key_prefix": prefix}
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def storage(request):
    """Settings kwargs for each backend."""
    if request.param == "memory":
        return {"storage": "memory://"}
    return request.getfixturevalue("redis_storage")


def limiter_with(storage, audit=None, **limits) -> RateLimiter:
    return RateLimiter(LimitSettings(**storage, **limits), audit or MemoryAuditSink())


async def ok(request):
    return PlainTextResponse("ok")


def make_app(limiter: RateLimiter) -> Starlette:
    """The limits in front of plain routes; tests/webui/test_rate_limits_app.py puts them in front of
    the real auth gate."""
    return Starlette(
        routes=[Route("/", ok), Route("/login", ok), Route("/login/callback", ok)],
        middleware=[
            Middleware(ClientAddressMiddleware),
            Middleware(RateLimitMiddleware, limiter=limiter, session_cookie="chat_session"),
        ],
    )


def test_login_attempts_per_ip_get_429_with_retry_after(storage):
    audit = MemoryAuditSink()
    app = make_app(limiter_with(storage, audit, login_per_minute_per_ip=2))
    attacker = TestClient(app, client=("10.0.0.66", 1))
    assert attacker.get("/login").status_code == 200
    assert attacker.get("/login/callback").status_code == 200
    refused = attacker.get("/login", headers={"Accept": "application/json"})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Too many login attempts" in refused.json()["detail"]
    [event] = audit.of_type(RATE_LIMITED)
    assert (event.ip, event.outcome) == ("10.0.0.66", "login_per_minute_per_ip")
    # Another address is not affected.
    assert TestClient(app, client=("10.0.0.67", 1)).get("/login").status_code == 200


def test_login_limit_expires_after_a_minute():
    app = make_app(limiter_with({"storage": "memory://"}, login_per_minute_per_ip=1))
    client = TestClient(app, client=("10.0.0.66", 1))
    with time_machine.travel(1_900_000_000, tick=False) as clock:
        assert client.get("/login").status_code == 200
        assert client.get("/login").status_code == 429
        clock.shift(61)
        assert client.get("/login").status_code == 200


def test_an_address_flood_is_audited_once_per_window_and_logged_per_request(caplog):
    audit = MemoryAuditSink()
    app = make_app(
        limiter_with({"storage": "memory://"}, audit, unauthenticated_per_minute_per_ip=1)
    )
    client = TestClient(app, client=("10.0.0.66", 1))
    with time_machine.travel(1_900_000_000, tick=False) as clock:
        codes = [client.get("/").status_code for _ in range(6)]
        assert codes == [200] + [429] * 5
        assert len(audit.of_type(RATE_LIMITED)) == 1
        refusals = [r for r in caplog.records if "exceeded" in r.getMessage()]
        assert len(refusals) == 5 and all("10.0.0.66" in r.getMessage() for r in refusals)
        clock.shift(61)
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]
        assert len(audit.of_type(RATE_LIMITED)) == 2


def test_failed_tokens_guard_per_address(storage):
    audit = MemoryAuditSink()
    limiter = limiter_with(storage, audit, failed_tokens_per_minute_per_ip=2)
    for _ in range(2):
        assert isinstance(limiter.check_failed_tokens("10.0.0.9"), Allowed)
        assert isinstance(limiter.hit_failed_token("10.0.0.9"), Allowed)
    for _ in range(3):
        refused = limiter.check_failed_tokens("10.0.0.9")
        assert isinstance(refused, Limited) and 1 <= refused.retry_after <= 60
        assert "invalid API tokens" in refused.message
    assert isinstance(limiter.check_failed_tokens("10.0.0.10"), Allowed)
    [event] = audit.of_type(RATE_LIMITED)
    assert (event.ip, event.outcome) == ("10.0.0.9", "failed_tokens_per_minute_per_ip")


def test_chat_per_minute_is_per_user(storage):
    audit = MemoryAuditSink()
    limiter = limiter_with(storage, audit, chat_per_minute=2)
    assert isinstance(limiter.hit_chat("iss|alice"), Allowed)
    assert isinstance(limiter.hit_chat("iss|alice"), Allowed)
    limited = limiter.hit_chat("iss|alice", ip="10.0.0.1")
    assert isinstance(limited, Limited)
    assert "sending messages too quickly" in limited.message
    assert str(limited.retry_after) in limited.message
    assert isinstance(limiter.hit_chat("iss|bob"), Allowed)
    assert audit.of_type(RATE_LIMITED)[0].actor == "iss|alice"


def test_tokens_per_day_budget(storage):
    limiter = limiter_with(storage, tokens_per_day=100)
    assert limiter.tokens_left("iss|alice") == 100
    assert limiter.consume_tokens("iss|alice", 90) == Allowed(10)
    assert isinstance(limiter.check_tokens("iss|alice"), Allowed)
    # A reply is never cut to fit: it is charged in full, and the next one is refused.
    over = limiter.consume_tokens("iss|alice", 20)
    assert isinstance(over, Limited) and over.limit == "tokens_per_day"
    assert limiter.tokens_left("iss|alice") == 0
    refused = limiter.check_tokens("iss|alice")
    assert isinstance(refused, Limited) and 0 < refused.retry_after <= 86400
    assert limiter.tokens_left("iss|bob") == 100


def test_redis_counters_are_shared_between_replicas(redis_storage):
    one = limiter_with(redis_storage, chat_per_minute=2)
    two = limiter_with(redis_storage, chat_per_minute=2)
    assert isinstance(one.hit_chat("iss|alice"), Allowed)
    assert isinstance(two.hit_chat("iss|alice"), Allowed)
    assert isinstance(one.hit_chat("iss|alice"), Limited)


def concurrency_for(storage) -> UserConcurrency:
    return UserConcurrency.from_settings(LimitSettings(**storage))


def test_one_generation_per_user_two_users(storage):
    replica_a, replica_b = concurrency_for(storage), concurrency_for(storage)
    if storage["storage"] == "memory://":
        replica_b = replica_a  # one process: the same instance serves every request
    with replica_a.hold("iss|alice"):
        with (
            pytest.raises(GenerationInProgress, match="already have a reply being generated"),
            replica_b.hold("iss|alice"),
        ):
            pass
        with replica_b.hold("iss|bob"):  # another user is not blocked
            pass
    with replica_b.hold("iss|alice"):  # released when the first finished
        pass
    replica_a.close()
    replica_b.close()


def test_lock_released_when_the_generation_fails(storage):
    concurrency = concurrency_for(storage)
    with pytest.raises(RuntimeError), concurrency.hold("iss|alice"):
        raise RuntimeError("engine failed")
    with concurrency.hold("iss|alice"):
        pass
    concurrency.close()


def test_two_threads_same_user_only_one_runs():
    concurrency = concurrency_for({"storage": "memory://"})
    inside, release = threading.Event(), threading.Event()

    def first():
        with concurrency.hold("iss|alice"):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=first)
    worker.start()
    assert inside.wait(5)
    with pytest.raises(GenerationInProgress), concurrency.hold("iss|alice"):
        pass
    release.set()
    worker.join(5)


def test_crashed_holder_lock_expires_after_ttl():
    now = [1000.0]
    concurrency = UserConcurrency(MemoryGenerationLocks(clock=lambda: now[0]), ttl_seconds=60)
    stuck = concurrency.hold("iss|alice")
    stuck.__enter__()  # never exited: a replica that died mid-generation
    with pytest.raises(GenerationInProgress), concurrency.hold("iss|alice"):
        pass
    now[0] += 61
    with concurrency.hold("iss|alice"):
        # The dead holder finishing late must not free the new generation's lock.
        stuck.__exit__(None, None, None)
        with pytest.raises(GenerationInProgress), concurrency.hold("iss|alice"):
            pass


def test_redis_lock_is_only_released_by_its_holder(redis_storage):
    locks = RedisGenerationLocks(REDIS_URL, redis_storage["key_prefix"])
    assert locks.acquire("iss|alice", "token-1", 60)
    assert not locks.acquire("iss|alice", "token-2", 60)
    locks.release("iss|alice", "token-2")  # not the holder: nothing happens
    assert not locks.acquire("iss|alice", "token-3", 60)
    locks.release("iss|alice", "token-1")
    assert locks.acquire("iss|alice", "token-4", 60)
    locks.close()
