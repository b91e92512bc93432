"""Stop from any tab or replica: the per-user stop counter, in memory and in the real Redis."""

from __future__ import annotations

import pytest
import redis

from core.shared_state import SharedStateUnavailable
from guards.settings import LimitSettings
from guards.stop_requests import COUNTER_TTL_SECONDS, StopRequests
from guards.user_concurrency import UserConcurrency
from tests.backends import REDIS_URL, redis_namespace
from tests.live_server import free_port

ALICE, BOB = "https://idp.test|alice", "https://idp.test|bob"


@pytest.fixture(params=["memory", "redis"])
def settings(request):
    if request.param == "memory":
        yield LimitSettings(storage="memory://")
        return
    with redis_namespace("stop-test") as prefix:
        yield LimitSettings(storage=REDIS_URL, key_prefix=prefix)


@pytest.fixture
def replicas(settings):
    """Two replicas' stop stores (in memory, one process: the same instance serves both)."""
    one = StopRequests.from_settings(settings)
    two = one if settings.storage == "memory://" else StopRequests.from_settings(settings)
    yield one, two
    one.close()
    two.close()


def test_a_stop_pressed_anywhere_reaches_the_users_running_turn(replicas):
    here, elsewhere = replicas
    turn = here.watch(ALICE)
    assert not turn() and not turn()
    elsewhere.request(ALICE)
    assert turn()
    assert turn()  # a stopped turn stays stopped


def test_a_stop_pressed_before_a_turn_started_never_stops_it(replicas):
    here, elsewhere = replicas
    elsewhere.request(ALICE)
    elsewhere.request(ALICE)
    turn = here.watch(ALICE)
    assert not turn()
    elsewhere.request(ALICE)
    assert turn()


def test_another_users_stop_does_not_stop_a_turn(replicas):
    here, elsewhere = replicas
    alices = here.watch(ALICE)
    elsewhere.request(BOB)
    assert not alices()
    assert here.watch(BOB)() is False  # nor is Bob's next turn stopped by it


def test_every_running_turn_of_the_user_hears_one_stop(replicas):
    # One reply at a time is the rule (guards.user_concurrency); without it, Stop ends them all.
    here, elsewhere = replicas
    first, second = here.watch(ALICE), elsewhere.watch(ALICE)
    here.request(ALICE)
    assert first() and second()


def test_redis_counters_expire_and_are_kept_alive_by_a_turn_starting():
    with redis_namespace("stop-test") as prefix:
        stops = StopRequests.from_settings(LimitSettings(storage=REDIS_URL, key_prefix=prefix))
        client = redis.Redis.from_url(REDIS_URL)
        try:
            stops.request(ALICE)
            key = f"{prefix}:stop:{ALICE}"
            assert 0 < client.ttl(key) <= COUNTER_TTL_SECONDS
            client.expire(key, 5)
            stops.watch(ALICE)  # a turn starting: the key outlives it
            assert client.ttl(key) > 5
        finally:
            client.close()
            stops.close()


def unreachable() -> LimitSettings:
    return LimitSettings(storage=f"redis://127.0.0.1:{free_port()}/0", key_prefix="stop-outage")


def test_with_redis_down_a_turn_is_never_stopped_by_it_and_pressing_stop_says_so(caplog):
    stops = StopRequests.from_settings(unreachable())
    turn = stops.watch(ALICE)  # does not raise: the turn goes on
    assert not turn()
    with pytest.raises(SharedStateUnavailable):
        stops.request(ALICE)
    assert "shared state unreachable" in caplog.text
    stops.close()


class FailingAfterStart:
    """Shared state that answers as a turn starts, then goes down."""

    def __init__(self) -> None:
        self.reads = 0

    def start(self, key: str) -> int:
        return 3

    def read(self, key: str) -> int:
        self.reads += 1
        raise SharedStateUnavailable("TimeoutError")

    def bump(self, key: str) -> None:
        raise SharedStateUnavailable("TimeoutError")

    def close(self) -> None:
        pass


def test_redis_failing_mid_turn_quiets_the_watch_for_the_rest_of_the_turn(caplog):
    counters = FailingAfterStart()
    turn = StopRequests(counters).watch(ALICE)
    assert not turn()
    assert not turn()
    # Asked once: a stuck Redis (a timeout per read) must not slow every token of the reply.
    assert counters.reads == 1
    assert caplog.text.count("shared state unreachable") == 1


def test_concurrency_says_whether_a_users_reply_is_running(settings):
    concurrency = UserConcurrency.from_settings(settings)
    assert not concurrency.running(ALICE)
    with concurrency.hold(ALICE):
        assert concurrency.running(ALICE)
        assert not concurrency.running(BOB)
    assert not concurrency.running(ALICE)
    concurrency.close()


def test_a_stop_pressed_in_this_process_cancels_the_users_turns_at_once(replicas):
    here, _ = replicas
    cancelled: list[str] = []
    alices = here.watch(ALICE, lambda: cancelled.append("alice"))
    bobs = here.watch(BOB, lambda: cancelled.append("bob"))
    here.request(ALICE)
    assert cancelled == ["alice"] and alices() and not bobs()
    later = here.watch(ALICE, lambda: cancelled.append("alice later"))
    assert cancelled == ["alice"] and not later()  # a turn started after the Stop runs on


def test_with_redis_down_a_stop_still_cancels_the_turns_of_this_process():
    stops = StopRequests.from_settings(unreachable())
    cancelled: list[str] = []
    turn = stops.watch(ALICE, lambda: cancelled.append("alice"))
    with pytest.raises(SharedStateUnavailable):
        stops.request(ALICE)
    assert cancelled == ["alice"] and turn()
    stops.close()
