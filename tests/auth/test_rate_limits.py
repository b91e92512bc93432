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

from auth.client_ip import ClientAddressMiddleware
from auth.network_settings import LimitSettings
from auth.rate_limit_middleware import RateLimitMiddleware
from auth.rate_limits import Allowed, Limited, RateLimiter
from auth.user_concurrency import (
    GenerationInProgress,
    MemoryGenerationLocks,
    RedisGenerationLocks,
    UserConcurrency,
)
from store.events import RATE_LIMITED, MemoryAuditSink
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


class FakeGate:
    """Stands in for the auth gate: X-Test-User marks a request as authenticated."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        user = dict(scope["headers"]).get(b"x-test-user")
        scope.setdefault("state", {})["user"] = user.decode() if user else None
        await self.app(scope, receive, send)


async def ok(request):
    return PlainTextResponse("ok")


def make_app(limiter: RateLimiter, gate_first: bool) -> Starlette:
    limit = Middleware(RateLimitMiddleware, limiter=limiter, auth_gate_runs_first=gate_first)
    stack = [Middleware(FakeGate), limit] if gate_first else [limit, Middleware(FakeGate)]
    return Starlette(
        routes=[Route("/", ok), Route("/login", ok), Route("/login/callback", ok)],
        middleware=[Middleware(ClientAddressMiddleware), *stack],
    )


def test_login_attempts_per_ip_get_429_with_retry_after(storage):
    audit = MemoryAuditSink()
    app = make_app(limiter_with(storage, audit, login_per_minute_per_ip=2), gate_first=True)
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
    app = make_app(limiter_with({"storage": "memory://"}, login_per_minute_per_ip=1), True)
    client = TestClient(app, client=("10.0.0.66", 1))
    with time_machine.travel(1_900_000_000, tick=False) as clock:
        assert client.get("/login").status_code == 200
        assert client.get("/login").status_code == 429
        clock.shift(61)
        assert client.get("/login").status_code == 200


@pytest.mark.parametrize("gate_first", [True, False])
def test_unauthenticated_requests_limited_but_not_logged_in_users(storage, gate_first):
    limiter = limiter_with(storage, unauthenticated_per_minute_per_ip=2)
    client = TestClient(make_app(limiter, gate_first), client=("10.0.0.8", 1))
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    # A logged-in user behind the same address (NAT) is never counted against it.
    for _ in range(5):
        assert client.get("/", headers={"X-Test-User": "iss|alice"}).status_code == 200
    refused = client.get("/", headers={"Accept": "text/html"})
    assert refused.status_code == 429
    assert "Too many requests" in refused.text and refused.headers["Retry-After"]


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
