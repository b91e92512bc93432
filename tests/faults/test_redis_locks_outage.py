"""The one-reply-at-a-time lock through a Redis outage (a real Redis behind a proxy the test cuts)."""

from __future__ import annotations

import logging

from guards.settings import LimitSettings
from guards.user_concurrency import UserConcurrency
from tests.backends import redis_namespace
from tests.faults.tcp_proxy import tcp_proxy


def test_a_release_during_an_outage_never_fails_the_reply_and_is_retried_after(caplog):
    with tcp_proxy("127.0.0.1", 6379) as proxy, redis_namespace("locks") as prefix:
        settings = LimitSettings(storage=f"redis://127.0.0.1:{proxy.port}/0", key_prefix=prefix)
        concurrency = UserConcurrency.from_settings(settings)
        with caplog.at_level(logging.WARNING, "chat.limits"), concurrency.hold("iss|alice"):
            proxy.cut()  # Redis goes away while the reply streams
            # Leaving the block did not raise: the reply that ran inside it ends cleanly.
        assert "released later" in caplog.text
        proxy.restore()
        with concurrency.hold("iss|alice"):  # not blocked until the lock's 15-minute TTL
            pass
        concurrency.close()
