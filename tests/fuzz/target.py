"""The fuzzed server: the whole app as deployed, its callers, and the victim's planted data.

The app is built as tests/webui/conftest.py builds it (embedded OIDC login, SQLite, the real
middleware stack), with limits raised so that fuzzed requests reach the handlers instead of
stopping at 429. "alice" is the victim: she has a conversation whose text carries unique markers,
a Gradio session of her own and an event id. The callers are other people ("bob", and "admin1"
for the admin) and must never see her markers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.types import ASGIApp

from app_factory import Services
from auth.api_settings import ApiSettings
from auth.bearer_tokens import PersonalTokenAuthenticator
from config import Settings
from core.identity import User
from guards.rate_limits import RateLimiter
from guards.user_concurrency import UserConcurrency
from model.fake_engine import FakeEngine
from store.api_tokens import ApiTokenStore
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from store.prompt_policy import PromptPolicy
from store.sql_session_store import SqlSessionStore
from store.token_policy import TokenPolicy
from tests.fuzz.gradio_protocol import GradioTab
from tests.fuzz.invariants import Observer
from tests.live_server import free_port
from webui.tokens_service import TokenContext, TokensService

SESSION_KEY = "k" * 40
FOREIGN_ORIGIN = "https://attacker.example"
HIGH = 1_000_000  # a limit the fuzzer never reaches


@dataclass(frozen=True)
class Caller:
    """A way of calling the app: the headers on every request, and those added to a POST."""

    name: str
    headers: dict[str, str]
    post_headers: dict[str, str]

    def headers_for(self, method: str) -> dict[str, str]:
        extra = self.post_headers if method.upper() not in ("GET", "HEAD", "OPTIONS") else {}
        return {**self.headers, **extra}


@dataclass(frozen=True)
class Planted:
    """The victim's data the callers learn (ids) or must never see (the markers).

    `title_marker` is in the conversation's title and in the audit trail's prompt excerpt, which
    admins read by design; `marker` is past the excerpt's 200 characters, in the conversation only.
    """

    title_marker: str
    marker: str
    conversation_id: str
    session_hash: str
    event_id: str

    def hidden_from(self, caller: str) -> tuple[str, ...]:
        return (self.marker,) if caller == "admin" else (self.title_marker, self.marker)


@dataclass
class FuzzTarget:
    url: str
    app: ASGIApp  # the app as uvicorn serves it (its routes are inside)
    services: Services
    observer: Observer
    victim: Planted
    callers: dict[str, Caller]

    def client(self, caller: Caller) -> httpx.Client:
        """A client sending `caller`'s headers (a POST's too); cookies it is answered are not kept."""

        def add_headers(request: httpx.Request) -> None:
            request.headers.update(caller.headers_for(request.method))

        return httpx.Client(
            base_url=self.url,
            timeout=15,
            cookies=no_cookies(),
            event_hooks={"request": [add_headers]},
        )


def no_cookies() -> CookieJar:
    """A jar that keeps nothing: each request carries exactly its caller's credentials."""
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))


def login(url: str, user: str) -> str:
    """The Cookie header of a real session for `user`, signed in through the embedded IdP."""
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/login", follow_redirects=True)
        assert "Authorize" in page.text, page.text[:300]
        landed = client.post(page.url, data={"sub": user}, follow_redirects=True)
        assert landed.status_code == 200, landed.text[:300]
        return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


def build(tmp_path, port: int) -> tuple[Settings, Services]:
    """Settings and services of the fuzzed app, on `port`, with its database under `tmp_path`."""
    settings = Settings(
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        oidc={"issuer": "embedded", "embedded_port": free_port(), "allowed_groups": ["staff"]},
        session={"secret_keys": [SESSION_KEY]},
        database={"url": f"sqlite:///{tmp_path}/fuzz.db"},
        page={"max_sessions": 100_000},
        limits={
            "chat_per_minute": HIGH,
            "login_per_minute_per_ip": HIGH,
            "unauthenticated_per_minute_per_ip": HIGH,
            "failed_tokens_per_minute_per_ip": HIGH,
            "gradio_joins_per_minute": HIGH,
            "gradio_sessions_per_hour": HIGH,
        },
    )
    database = create_database(settings.database.url)
    migrate(database)
    audit = AuditLog(database)
    concurrency = UserConcurrency.from_settings(settings.limits)
    tokens = ApiTokenStore(database, lambda: datetime.now(UTC))
    services = Services(
        engine=FakeEngine(delay=0.0),
        history=ChatHistory(database, audit),
        audit=audit,
        sessions=SqlSessionStore(database),
        audit_log=audit,
        limiter=RateLimiter(settings.limits, audit),
        concurrency=concurrency,
        policy=PromptPolicy(settings.policy.block_keywords, settings.policy.block_patterns),
        api_tokens=tokens,
        authenticators=(PersonalTokenAuthenticator(tokens, audit, lambda: datetime.now(UTC)),),
        token_policy=TokenPolicy(tokens, audit),
        on_close=(concurrency.close, database.dispose),
    )
    return settings, services


def plant(url: str, cookie: str) -> Planted:
    """Alice chats through the queue, as her browser would; her tab and event stay hers."""
    title_marker, marker = (f"victim-{kind}-{uuid.uuid4().hex}" for kind in ("title", "text"))
    message = f"{title_marker} plan\n{'a secret plan, ' * 20}{marker}"
    with httpx.Client(base_url=url, headers={"Cookie": cookie}, timeout=30) as client:
        tab = GradioTab(client, "alice-tab")
        chat = tab.api_index("chat")
        event_id = tab.join(chat, [message, None]).json()["event_id"]
        [done] = [
            m for m in tab.messages(result_expected=True) if m.get("msg") == "process_completed"
        ]
        reply = done["output"]["data"][0]
    assert reply["status"] == "complete" and marker in reply["reply"], reply
    return Planted(title_marker, marker, reply["conversation_id"], "alice-tab", event_id)


def bearer_token(services: Services, issuer: str, subject: str) -> str:
    """A personal API token for `subject`, made as the tokens tab makes one."""
    tokens = TokensService(services.api_tokens, services.audit, ApiSettings())
    user = User(issuer, subject, f"{subject}@example.com", subject, ("staff",))
    return tokens.create(TokenContext(user, "127.0.0.1"), "fuzz", 30).secret
