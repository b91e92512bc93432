"""A small gated app for bearer-credential tests: tests/auth/conftest.py's /whoami app plus the
refusal middleware wrapped right around the gate, as the real app factory does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from auth.bearer_tokens import CredentialRefusalMiddleware
from auth.route_gate import RequestAuthenticator
from core.audit import MemoryAuditSink
from core.sessions import MemorySessionStore
from tests.auth.conftest import build_app, make_settings


class Clock:
    """An injected clock: tests move time forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @staticmethod
    def real() -> datetime:
        return datetime.now(UTC)  # for tokens signed with real timestamps


def gated_app(authenticators: Iterable[RequestAuthenticator], audit: MemoryAuditSink):
    """The app's lifespan (IdP discovery) never runs: these tests use no login."""
    settings = make_settings(1, "https://idp.test")
    app, _ = build_app(settings, audit, MemorySessionStore(), authenticators=tuple(authenticators))
    app.add_middleware(CredentialRefusalMiddleware)
    return app
