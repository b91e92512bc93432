"""The whole app (real auth gate, embedded OIDC provider, SQLite store) on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app_factory import Services, create_app
from auth.bearer_tokens import PersonalTokenAuthenticator
from auth.redis_state import shared_auth_state
from config import Settings
from guards.rate_limits import RateLimiter
from guards.user_concurrency import UserConcurrency
from model.engine import Engine
from model.fake_engine import FakeEngine
from store.api_tokens import ApiTokenStore
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from store.prompt_policy import PromptPolicy
from store.sql_session_store import SqlSessionStore
from store.token_policy import TokenPolicy
from store.user_preferences import SqlUserPreferences
from tests.backends import REDIS_URL, redis_namespace
from tests.event_loop_io import no_blocking_io_on_the_event_loop  # noqa: F401 - autouse
from tests.live_server import free_port, live_server
from tests.server_errors import ServerErrorWatch

SESSION_KEY = "k" * 40


@dataclass
class RunningChat:
    url: str
    settings: Settings
    services: Services

    def login(self, user: str) -> httpx.Client:
        """A client holding a real session for `user`, obtained through the embedded IdP."""
        client = httpx.Client(base_url=self.url, timeout=30)
        page = client.get("/login", follow_redirects=True)
        assert "Authorize" in page.text, page.text[:300]
        landed = client.post(page.url, data={"sub": user}, follow_redirects=True)
        assert landed.status_code == 200, landed.text[:300]
        return client

    def session_headers(self, client: httpx.Client) -> dict[str, str]:
        """The Cookie header a script would send (gradio_client takes headers, not a cookie jar)."""
        jar = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
        return {"Cookie": jar}

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.settings.oidc.embedded_port}"

    def key(self, user: str) -> str:
        return f"{self.issuer}|{user}"


@pytest.fixture
def sql_store(tmp_path) -> Iterator[tuple[ChatHistory, AuditLog]]:
    """The real SQL history and audit trail on a fresh SQLite file, for ChatService tests."""
    database = create_database(f"sqlite:///{tmp_path}/chat.db")
    migrate(database)
    audit = AuditLog(database)
    yield ChatHistory(database, audit), audit
    database.dispose()


@pytest.fixture
def chat_server(tmp_path, monkeypatch) -> Iterator[Callable[..., RunningChat]]:
    """Factory: start the app with a given engine and settings overrides; stopped at teardown."""
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    watches: list[ServerErrorWatch] = []
    with contextlib.ExitStack() as stack:

        def start(
            engine: Engine | None = None, *, shared_state: bool = False, **sections: Any
        ) -> RunningChat:
            """`shared_state`: limits, locks, login state and Gradio bindings in the real Redis."""
            port, idp_port = free_port(), free_port()
            if shared_state:
                prefix = stack.enter_context(redis_namespace("chat"))
                sections["limits"] = {
                    **sections.get("limits", {}),
                    "storage": REDIS_URL,
                    "key_prefix": prefix,
                }
            settings = Settings(
                server={
                    "port": port,
                    "public_url": f"http://127.0.0.1:{port}",
                    **sections.pop("server", {}),
                },
                oidc={
                    "issuer": "embedded",
                    "embedded_port": idp_port,
                    "allowed_groups": ["staff"],
                    **sections.pop("oidc", {}),
                },
                session={"secret_keys": [SESSION_KEY]},
                database={"url": f"sqlite:///{tmp_path}/chat-{port}.db"},
                **sections,
            )
            database = create_database(settings.database.url)
            migrate(database)
            audit = AuditLog(database)
            concurrency = UserConcurrency.from_settings(settings.limits)
            tokens = ApiTokenStore(database, lambda: datetime.now(UTC))
            limits, hours = settings.limits, settings.session.gradio_binding_ttl_hours
            shared = shared_auth_state(limits.storage, limits.key_prefix, hours)
            services = Services(
                engine=engine or FakeEngine(delay=0.02),
                history=ChatHistory(database, audit),
                audit=audit,
                sessions=SqlSessionStore(database),
                audit_log=audit,
                limiter=RateLimiter(settings.limits, audit),
                concurrency=concurrency,
                policy=PromptPolicy(settings.policy.block_keywords, settings.policy.block_patterns),
                api_tokens=tokens,
                preferences=SqlUserPreferences(database),
                authenticators=(
                    PersonalTokenAuthenticator(tokens, audit, lambda: datetime.now(UTC)),
                ),
                token_policy=TokenPolicy(tokens, audit),
                login_states=shared.login_states if shared else None,
                bindings=shared.bindings if shared else None,
                logout_token_ids=shared.logout_token_ids if shared else None,
                on_close=(
                    concurrency.close,
                    database.dispose,
                    *((shared.close,) if shared else ()),
                ),
            )
            watch = ServerErrorWatch(create_app(settings, services))
            watches.append(watch)
            url = stack.enter_context(live_server(watch, port=port))
            return RunningChat(url, settings, services)

        yield start
    errors = [error for watch in watches for error in watch.errors]
    assert not errors, f"the app answered internal errors: {errors}"
