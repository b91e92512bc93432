"""Shared fixtures for the SSO tests: our bad-token IdP on loopback and the app under test around it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from app_factory import site_of
from auth.assembly import AuthParts, build_auth
from config import Settings
from core.audit import MemoryAuditSink
from core.identity import User
from core.request_facts import csrf_token, current_user
from core.sessions import MemorySessionStore
from tests.auth.fake_idp import FakeIdp
from tests.event_loop_io import no_blocking_io_on_the_event_loop  # noqa: F401 - autouse
from tests.live_server import free_port, live_server

SESSION_KEY = "test-session-key-0123456789-abcdefghijklmnopqrstuvwxyz"
CLIENT_SECRET = "test-client-secret-0123456789"


@pytest.fixture(scope="session")
def fake_idp_server() -> Iterator[FakeIdp]:
    idp = FakeIdp()
    with live_server(idp.app()) as base:
        idp.issuer = base
        yield idp


@pytest.fixture
def fake_idp(fake_idp_server: FakeIdp) -> FakeIdp:
    """The shared IdP, reset to honest behaviour for each test."""
    fake_idp_server.reset()
    return fake_idp_server


@dataclass
class ChatUnderTest:
    base: str
    settings: Settings
    audit: MemoryAuditSink
    store: MemorySessionStore
    auth: AuthParts

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10, **kwargs)

    def cookie_name(self) -> str:
        return self.auth.sessions.cookie.name

    def refusals(self) -> list[str | None]:
        return [e.outcome for e in self.audit.of_type("login.refused")]


def make_settings(port: int, issuer: str, **sections: dict[str, Any]) -> Settings:
    oidc = {"issuer": issuer, "client_secret": CLIENT_SECRET, **sections.pop("oidc", {})}
    session = {"secret_keys": [SESSION_KEY], **sections.pop("session", {})}
    server = {"public_url": f"http://127.0.0.1:{port}", **sections.pop("server", {})}
    return Settings(server=server, oidc=oidc, session=session, **sections)


def auth_app(settings: Settings, **kw: Any) -> tuple[FastAPI, AuthParts]:
    """An app holding only the auth routes behind the gate, started and stopped by its lifespan."""
    auth = build_auth(settings.oidc, settings.session, site_of(settings), **kw)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await auth.start()
        yield
        await auth.stop()

    return FastAPI(routes=auth.routes, middleware=[auth.gate], lifespan=lifespan), auth


def build_app(settings: Settings, audit: MemoryAuditSink, store: MemorySessionStore, **kw: Any):
    """A small FastAPI app with one protected route that reports the caller."""
    app, components = auth_app(settings, sessions=store, audit=audit, **kw)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        user = current_user(request)
        return {"key": user.key, "admin": user.is_admin, "groups": list(user.groups)}

    @app.get("/csrf")
    async def csrf(request: Request) -> dict[str, str]:
        return {"csrf_token": csrf_token(request)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app, components


@pytest.fixture
def chat_app(fake_idp: FakeIdp) -> Iterator[Callable[..., ChatUnderTest]]:
    """Factory: start the app (real uvicorn on loopback) against the fake IdP with extra settings."""
    with contextlib.ExitStack() as stack:

        def start(
            issuer: str | None = None, auth_kwargs: dict[str, Any] | None = None, **sections: Any
        ) -> ChatUnderTest:
            port = free_port()
            settings = make_settings(port, issuer or fake_idp.issuer, **sections)
            audit, store = MemoryAuditSink(), MemorySessionStore()
            app, components = build_app(settings, audit, store, **(auth_kwargs or {}))
            base = stack.enter_context(live_server(app, port=port))
            return ChatUnderTest(base, settings, audit, store, components)

        yield start


def login(client: httpx.Client, next_path: str = "/whoami") -> httpx.Response:
    """Walk the real redirects: /login -> IdP authorize -> our callback -> next."""
    return client.get("/login", params={"next": next_path}, follow_redirects=True)


def plant_session(chat: ChatUnderTest, client: httpx.Client, user: User) -> str:
    """A server-side session created directly (for tests about sessions, not about login)."""
    session = chat.auth.sessions.start(
        user, ip=None, user_agent=None, idp_session_id=None, id_token=None
    )
    client.cookies.set(chat.cookie_name(), chat.auth.sessions.cookie.sign(session.id))
    return session.id


ALICE = User(
    issuer="https://idp.test", subject="alice-sub", email="a@corp.example", groups=("staff",)
)
BOB = User(issuer="https://idp.test", subject="bob-sub", email="b@corp.example", groups=("staff",))


def run(coro: Any) -> Any:
    return asyncio.run(coro)
