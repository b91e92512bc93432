"""Rate limits on top of the `limits` library: per user (chat, tokens) and per IP (login, anonymous,
failed Bearer tokens).

Storage is `memory://` for one process or `redis://` so that replicas share the counters.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
)
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.strategies import RateLimiter as RateLimiterStrategy

from core.audit import RATE_LIMITED, AuditEvent, AuditSink
from core.shared_state import TIMEOUT_SECONDS, reaches_shared_state
from guards.settings import LimitSettings

logger = logging.getLogger("chat.limits")

_MESSAGES = {
    "chat_per_minute": "You are sending messages too quickly. Try again in {s} seconds.",
    "tokens_per_day": "You have used today's reply allowance. Try again in {s} seconds.",
    "login_per_minute_per_ip": "Too many login attempts. Try again in {s} seconds.",
    "unauthenticated_per_minute_per_ip": "Too many requests. Try again in {s} seconds.",
    "gradio_joins_per_minute": "Too many actions in a minute. Try again in {s} seconds.",
    "gradio_sessions_per_hour": (
        "Too many new chat tabs in an hour. Reuse an open tab, or try again in {s} seconds."
    ),
    "failed_tokens_per_minute_per_ip": (
        "Too many invalid API tokens from your address. Check the token, then try again in {s} seconds."
    ),
}
# Limits a flood hits: each is audited once per window per address or user, so a flood cannot turn
# every refused request into a database write. The chat limits are audited at each refusal (a
# signed-in user's own pace bounds them, and the metrics count those events).
_AUDITED_ONCE_PER_WINDOW = frozenset(
    {
        "login_per_minute_per_ip",
        "unauthenticated_per_minute_per_ip",
        "failed_tokens_per_minute_per_ip",
        "gradio_joins_per_minute",
        "gradio_sessions_per_hour",
    }
)


@dataclass(frozen=True)
class Allowed:
    remaining: int


@dataclass(frozen=True)
class Limited:
    limit: str  # the settings key that was exceeded
    retry_after: int  # whole seconds, at least 1

    @property
    def message(self) -> str:
        """A sentence for the user: what happened and when to retry."""
        return _MESSAGES[self.limit].format(s=self.retry_after)


Decision = Allowed | Limited


class RateLimiter:
    """All request and usage limits; one instance per app, shared by middleware and handlers.

    Every method may block (Redis storage, an audit record of a refusal): async callers use
    core.blocking_io.run_blocking."""

    def __init__(self, settings: LimitSettings, audit: AuditSink) -> None:
        options = (
            {}
            if settings.storage.startswith("memory://")
            else {
                "key_prefix": settings.key_prefix,
                "socket_timeout": TIMEOUT_SECONDS,  # a stuck Redis fails the request, not hangs it
                "socket_connect_timeout": TIMEOUT_SECONDS,
            }
        )
        self._storage = storage_from_string(settings.storage, **options)
        self._moving = MovingWindowRateLimiter(self._storage)
        self._fixed = FixedWindowRateLimiter(self._storage)
        self._audit = audit
        self._chat = RateLimitItemPerMinute(settings.chat_per_minute)
        self._tokens = RateLimitItemPerDay(settings.tokens_per_day)
        self._login = RateLimitItemPerMinute(settings.login_per_minute_per_ip)
        self._anonymous = RateLimitItemPerMinute(settings.unauthenticated_per_minute_per_ip)
        self._failed_tokens = RateLimitItemPerMinute(settings.failed_tokens_per_minute_per_ip)
        self._joins = RateLimitItemPerMinute(settings.gradio_joins_per_minute)
        self._tabs = RateLimitItemPerHour(settings.gradio_sessions_per_hour)
        self._audited = RateLimitItemPerMinute(1)  # one audit event per window (see above)

    @reaches_shared_state
    def hit_chat(self, user_key: str, ip: str | None = None) -> Decision:
        """Count one chat message of a user; Limited once chat_per_minute is exceeded."""
        return self._hit(
            self._moving, self._chat, "chat_per_minute", user_key, actor=user_key, ip=ip
        )

    @reaches_shared_state
    def hit_gradio_join(self, user_key: str, ip: str | None, new_tab: bool) -> Decision:
        """Count one Gradio queue join of a user, and the tab if it is new to the queue."""
        if new_tab:
            tabs = self._hit(
                self._moving,
                self._tabs,
                "gradio_sessions_per_hour",
                user_key,
                actor=user_key,
                ip=ip,
            )
            if isinstance(tabs, Limited):
                return tabs
        return self._hit(
            self._moving, self._joins, "gradio_joins_per_minute", user_key, actor=user_key, ip=ip
        )

    @reaches_shared_state
    def hit_login(self, ip: str) -> Decision:
        return self._hit(self._moving, self._login, "login_per_minute_per_ip", ip, ip=ip)

    @reaches_shared_state
    def hit_unauthenticated(self, ip: str) -> Decision:
        """Count one request the auth gate did not identify (anonymous or refused credentials)."""
        return self._hit(
            self._moving, self._anonymous, "unauthenticated_per_minute_per_ip", ip, ip=ip
        )

    @reaches_shared_state
    def hit_failed_token(self, ip: str) -> Decision:
        """Count one Bearer token the gate refused as unknown, expired or revoked."""
        return self._hit(
            self._moving, self._failed_tokens, "failed_tokens_per_minute_per_ip", ip, ip=ip
        )

    @reaches_shared_state
    def check_failed_tokens(self, ip: str) -> Decision:
        """Before a token lookup: Limited once the address has used up its failed tokens."""
        name = "failed_tokens_per_minute_per_ip"
        if self._moving.test(self._failed_tokens, name, ip):
            return Allowed(self._moving.get_window_stats(self._failed_tokens, name, ip).remaining)
        return self._refused(self._moving, self._failed_tokens, name, ip, None, ip)

    @reaches_shared_state
    def tokens_left(self, user_key: str) -> int:
        """Tokens the user may still generate today (a window that starts at first use)."""
        stats = self._fixed.get_window_stats(self._tokens, "tokens_per_day", user_key)
        return max(0, stats.remaining)

    @reaches_shared_state
    def check_tokens(self, user_key: str, ip: str | None = None) -> Decision:
        """Before generating: Limited when today's token budget is already used up."""
        left = self.tokens_left(user_key)
        if left > 0:
            return Allowed(left)
        return self._refused(self._fixed, self._tokens, "tokens_per_day", user_key, user_key, ip)

    @reaches_shared_state
    def consume_tokens(self, user_key: str, n: int) -> Decision:
        """After generating: charge n tokens (always charged, a reply is never cut to fit)."""
        if n <= 0:
            return Allowed(self.tokens_left(user_key))
        self._fixed.hit(self._tokens, "tokens_per_day", user_key, cost=n)
        left = self.tokens_left(user_key)
        if left > 0:
            return Allowed(left)
        retry = _retry_after(self._fixed, self._tokens, "tokens_per_day", user_key)
        return Limited("tokens_per_day", retry)

    def _hit(
        self,
        strategy: RateLimiterStrategy,
        item: RateLimitItem,
        name: str,
        key: str,
        *,
        actor: str | None = None,
        ip: str | None = None,
    ) -> Decision:
        if strategy.hit(item, name, key):
            return Allowed(strategy.get_window_stats(item, name, key).remaining)
        return self._refused(strategy, item, name, key, actor, ip)

    def _refused(
        self,
        strategy: RateLimiterStrategy,
        item: RateLimitItem,
        name: str,
        key: str,
        actor: str | None,
        ip: str | None,
    ) -> Limited:
        decision = Limited(name, _retry_after(strategy, item, name, key))
        logger.warning("rate limit %s exceeded (client %s)", name, ip)
        if name in _AUDITED_ONCE_PER_WINDOW and not self._fixed.hit(
            self._audited, "audited", name, key
        ):
            return decision  # this window's refusals of this address are already in the trail
        self._audit.record(
            AuditEvent(
                RATE_LIMITED,
                actor=actor,
                ip=ip,
                outcome=name,
                details={"retry_after": decision.retry_after},
            )
        )
        return decision


def _retry_after(strategy: RateLimiterStrategy, item: RateLimitItem, *ident: str) -> int:
    reset = strategy.get_window_stats(item, *ident).reset_time
    return max(1, math.ceil(reset - time.time()))
