"""Redis unreachable: requests get 503 "try again" (never a 500), and no chat runs unchecked."""

from __future__ import annotations

import httpx
import pytest
from redis.exceptions import RedisError

from core.audit import MemoryAuditSink
from core.identity import User
from core.shared_state import SharedStateUnavailable
from guards.rate_limits import RateLimiter
from guards.settings import LimitSettings
from guards.user_concurrency import UserConcurrency
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from tests.live_server import free_port
from tests.webui.fakes import MemoryHistory
from webui.chat_service import ChatService, TurnContext, TurnGuards

BROWSER = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))


def test_with_redis_down_every_request_gets_a_retryable_503(chat_server):
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    chat = chat_server(limits={"storage": nothing_listens, "key_prefix": "outage-test"})
    with httpx.Client(base_url=chat.url, timeout=30) as client:
        page = client.get("/login", headers=BROWSER)
        assert page.status_code == 503
        assert page.headers["retry-after"] == "5"
        assert "Temporarily unavailable" in page.text and "Try again" in page.text
        script = client.get("/login", headers={"accept": "application/json"})
        assert script.status_code == 503
        assert "Try again" in script.json()["detail"]
        assert client.get("/healthz").status_code == 200  # liveness does not depend on Redis


def unreachable() -> LimitSettings:
    return LimitSettings(storage=f"redis://127.0.0.1:{free_port()}/0", key_prefix="outage-test")


def refused_turn(guards: TurnGuards):
    engine, history = FakeEngine(delay=0.0), MemoryHistory()
    service = ChatService(engine, history, MemoryAuditSink(), GenerationSettings(), guards)
    updates = list(service.reply(TurnContext(ALICE), None, "hello"))
    assert engine.requests == [] and history.conversations == {}  # nothing ran, nothing half-saved
    return updates


def test_a_turn_whose_limits_cannot_be_checked_is_refused_not_run():
    limiter = RateLimiter(unreachable(), MemoryAuditSink())  # the real limiter, Redis down
    (update,) = refused_turn(TurnGuards(limiter=limiter))
    assert update.status == "refused"
    assert "try again" in update.notice.lower()


def test_a_turn_whose_one_at_a_time_lock_cannot_be_taken_is_refused_not_run():
    concurrency = UserConcurrency.from_settings(unreachable())  # real Redis locks, Redis down
    (update,) = refused_turn(TurnGuards(concurrency=concurrency))
    assert update.status == "refused"
    assert "try again" in update.notice.lower()


def test_outside_auth_an_outage_is_one_domain_error_whatever_redis_raised():
    limiter = RateLimiter(unreachable(), MemoryAuditSink())
    with pytest.raises(SharedStateUnavailable) as caught:
        limiter.hit_chat("alice")
    assert isinstance(caught.value.__cause__, RedisError)  # the cause is kept for the logs
