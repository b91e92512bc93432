"""The real gradio_client against the whole app on a loopback port, with personal API tokens and
service-account JWTs instead of a browser session."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from gradio_client import Client

from app_factory import Services, create_app
from auth.api_settings import ApiSettings
from auth.bearer_tokens import CredentialRefusalMiddleware, PersonalTokenAuthenticator
from auth.service_accounts import AccessTokenVerifier, ServiceAccountAuthenticator
from config import Settings
from core.api_tokens import TOKEN_PREFIX
from core.audit import CHAT_REQUEST, TOKEN_CREATED, TOKEN_REFUSED, TOKEN_REVOKED
from core.identity import User
from guards.rate_limits import RateLimiter
from guards.user_concurrency import UserConcurrency
from model.fake_engine import FakeEngine
from store.api_tokens import ApiTokenStore
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from tests.auth.fake_idp import FakeIdp
from tests.auth.loopback_server import client_from, serve_built
from tests.live_server import free_port, live_server
from webui.tokens_service import TokenContext, TokensService

SESSION_KEY = "k" * 40
SERVICE_AUDIENCE = "chat-api"
SCRIPT_API = {"/chat", "/list_conversations", "/get_conversation", "/delete_conversation"}


@dataclass
class ChatWithTokens:
    url: str
    issuer: str
    services: Services
    tokens: TokensService
    idp: FakeIdp

    def user(self, subject: str, admin: bool = False) -> User:
        groups = ("staff", "chat-admins") if admin else ("staff",)
        return User(self.issuer, subject, f"{subject}@example.com", subject, groups, admin)

    def token(self, subject: str, name: str = "script", **kw: Any) -> str:
        """A token made through the service, as the tab does for a logged-in user."""
        ctx = TokenContext(self.user(subject, kw.pop("admin", False)), "127.0.0.1")
        return self.tokens.create(ctx, name, kw.pop("days", 30), **kw).secret

    def client(self, secret: str) -> Client:
        return Client(self.url, headers=bearer(secret), verbose=False)

    def audit(self, kind: str) -> list[Any]:
        return self.services.audit_log.query(type=kind).records


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    fake = FakeIdp()
    with live_server(fake.app()) as base:
        fake.issuer = base
        yield fake


@pytest.fixture
def start(tmp_path, monkeypatch, idp) -> Iterator[Any]:
    """Factory: the whole app (embedded login) with token and service-account authenticators."""
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with contextlib.ExitStack() as stack:

        def run(**sections: Any) -> ChatWithTokens:
            built: dict[str, Any] = {}

            def build(url: str) -> Any:
                app, built["services"], built["tokens"], built["idp_port"] = _build(
                    url, tmp_path, idp, sections
                )
                app.add_middleware(
                    CredentialRefusalMiddleware
                )  # production: right outside the gate
                return app

            # A short graceful shutdown: gradio_client's heartbeat streams would hold it 15 s.
            url = stack.enter_context(serve_built(build, lifespan="on"))
            issuer = f"http://127.0.0.1:{built['idp_port']}"  # the embedded login's
            return ChatWithTokens(url, issuer, built["services"], built["tokens"], idp)

        yield run


def _build(url: str, tmp_path, idp: FakeIdp, sections: dict[str, Any]):
    """The app as the lead's factory builds it, plus our two authenticators."""
    port, idp_port = int(url.rsplit(":", 1)[1]), free_port()
    settings = Settings(
        server={"port": port, "public_url": url},
        oidc={"issuer": "embedded", "embedded_port": idp_port, "allowed_groups": ["staff"]},
        session={"secret_keys": [SESSION_KEY]},
        database={"url": f"sqlite:///{tmp_path}/chat-{port}.db"},
        **sections,
    )
    database = create_database(settings.database.url)
    migrate(database)
    audit = AuditLog(database)
    concurrency = UserConcurrency.from_settings(settings.limits)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    store = ApiTokenStore(database, clock)
    service = ServiceAccountAuthenticator(
        AccessTokenVerifier(
            issuer=idp.issuer,
            audience=SERVICE_AUDIENCE,
            algorithms=("RS256",),
            leeway_seconds=30,
            fetch_jwks=_jwks_of(idp),
            clock=clock,
        ),
        issuer=idp.issuer,
        groups_claim="groups",
        admin_groups=("chat-admins",),
        allowed_clients=(),
        audit=audit,
        clock=clock,
    )
    services = Services(
        engine=FakeEngine(delay=0.02),
        history=ChatHistory(database, audit),
        audit=audit,
        audit_log=audit,
        limiter=RateLimiter(settings.limits, audit),
        concurrency=concurrency,
        authenticators=(
            PersonalTokenAuthenticator(store, audit, clock, jwts_handled_elsewhere=True),
            service,
        ),
        on_close=(concurrency.close, database.dispose),
    )
    tokens = TokensService(store, audit, ApiSettings(), clock=clock)
    return create_app(settings, services), services, tokens, settings.oidc.embedded_port


def _jwks_of(idp: FakeIdp):
    async def fetch(force: bool) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{idp.issuer}/jwks")).json()

    return fetch


@pytest.fixture
def chat(start) -> ChatWithTokens:
    return start()


def test_a_token_streams_continues_and_lists_history_as_its_user(chat):
    client = chat.client(chat.token("alice", name="nightly"))
    job = client.submit("hello there friend", None, api_name="/chat")
    partials = [update["reply"] for update in job]
    final = job.outputs()[-1]
    assert final["status"] == "complete" and final["reply"] == "You said: hello there friend"
    assert len({p for p in partials if p}) > 1  # partial replies arrived while streaming

    follow = client.predict("again", final["conversation_id"], api_name="/chat")
    assert follow["conversation_id"] == final["conversation_id"]
    listed = client.predict("", api_name="/list_conversations")
    assert [c["id"] for c in listed] == [final["conversation_id"]]
    stored = client.predict(final["conversation_id"], api_name="/get_conversation")
    assert len(stored["messages"]) == 4
    records = chat.audit(CHAT_REQUEST)
    assert {r.actor for r in records} == {chat.user("alice").key}
    assert all('"via_token":"nightly"' in r.details.replace(" ", "") for r in records)
    [created] = chat.audit(TOKEN_CREATED)
    assert created.actor == chat.user("alice").key and "nightly" in created.details


def test_unknown_expired_and_revoked_tokens_are_refused_with_clear_errors(chat):
    unknown = TOKEN_PREFIX + "U" * 43
    with pytest.raises(Exception, match="credentials"):  # gradio_client's AuthenticationError
        chat.client(unknown)
    assert "not valid" in httpx.get(f"{chat.url}/config", headers=bearer(unknown)).text

    secret = chat.token("alice")
    client = chat.client(secret)
    assert client.predict("", api_name="/list_conversations") == []
    token_id = chat.tokens.list_mine(TokenContext(chat.user("alice")))[0].id
    assert chat.tokens.revoke_mine(TokenContext(chat.user("alice")), token_id)
    with pytest.raises(Exception):  # noqa: B017 - the open client is cut off at once
        client.predict("", api_name="/list_conversations")
    refused = httpx.get(f"{chat.url}/gradio_api/info", headers=bearer(secret))
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert len(chat.audit(TOKEN_REVOKED)) == 1
    assert {r.outcome for r in chat.audit(TOKEN_REFUSED)} >= {"unknown", "revoked"}


def test_an_expired_token_is_refused(chat, time_machine):
    secret = chat.token("alice", days=1)
    time_machine.move_to(datetime.now(UTC) + timedelta(days=1, minutes=1), tick=True)
    response = httpx.get(f"{chat.url}/config", headers=bearer(secret))
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_a_token_used_from_outside_its_ranges_gets_403(chat):
    secret = chat.token("alice", cidrs="127.0.0.2/32")
    with pytest.raises(Exception):  # noqa: B017 - gradio_client reports it cannot load the app
        chat.client(secret)
    with client_from("127.0.0.1", chat.url) as here:
        refused = here.get("/config", headers=bearer(secret))
    assert refused.status_code == 403 and "network address" in refused.json()["message"]
    with client_from("127.0.0.2", chat.url) as there:
        assert there.get("/config", headers=bearer(secret)).status_code == 200


def test_a_token_of_one_user_cannot_read_anothers_conversations(chat):
    alice, bob = chat.client(chat.token("alice")), chat.client(chat.token("bob"))
    mine = alice.predict("a secret plan", None, api_name="/chat")["conversation_id"]
    with pytest.raises(Exception, match="not found"):
        bob.predict(mine, api_name="/get_conversation")
    with pytest.raises(Exception, match="not found"):
        bob.predict(mine, api_name="/delete_conversation")
    assert bob.predict("", api_name="/list_conversations") == []
    assert len(alice.predict(mine, api_name="/get_conversation")["messages"]) == 2


def test_a_non_admin_token_gets_no_admin_handlers_or_exports(chat):
    secret = chat.token("admin1", admin=True, name="plain")  # an admin's token without admin scope
    client = chat.client(secret)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == (
        SCRIPT_API
    )
    config = httpx.get(f"{chat.url}/config", headers=bearer(secret)).json()
    names = {d.get("api_name") for d in config["dependencies"]} - {None}
    assert not any("admin" in str(n) or "audit" in str(n) for n in names)
    with pytest.raises(Exception):  # noqa: B017 - not an endpoint at all
        client.predict(api_name="/audit_page")
    refused = httpx.get(f"{chat.url}/admin/audit.csv", headers=bearer(secret))
    assert refused.status_code == 403

    scoped = chat.token("admin1", admin=True, name="ops", admin_scope=True)
    exported = httpx.get(f"{chat.url}/admin/audit.csv", headers=bearer(scoped))
    assert exported.status_code == 200 and exported.text.startswith("id,")


def test_rate_limits_apply_to_tokens_per_user(start):
    chat = start(limits={"chat_per_minute": 2})
    first, second = (
        chat.client(chat.token("alice", name="a")),
        chat.client(chat.token("alice", name="b")),
    )
    assert first.predict("one", None, api_name="/chat")["status"] == "complete"
    assert second.predict("two", None, api_name="/chat")["status"] == "complete"
    third = second.predict("three", None, api_name="/chat")
    assert third["status"] == "rate_limited" and "too quickly" in third["notice"]
    assert chat.services.engine.requests and len(chat.services.engine.requests) == 2


def _service_jwt(idp: FakeIdp, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": SERVICE_AUDIENCE, "sub": "svc-reports", "iat": now,
              "exp": now + 300, **overrides}  # fmt: skip
    return idp.sign(claims, typ="at+jwt")


def test_a_service_account_jwt_works_and_bad_ones_are_refused(chat):
    client = chat.client(_service_jwt(chat.idp))
    reply = client.predict("status report", None, api_name="/chat")
    assert reply["status"] == "complete"
    assert client.predict("", api_name="/list_conversations")[0]["id"] == reply["conversation_id"]

    for spoiled, reason in (
        (_service_jwt(chat.idp, aud="another-api"), "audience_mismatch"),
        (_service_jwt(chat.idp, exp=int(time.time()) - 600), "expired"),
    ):
        with pytest.raises(Exception, match="credentials"):
            chat.client(spoiled)
        response = httpx.get(f"{chat.url}/gradio_api/info", headers=bearer(spoiled))
        assert response.status_code == 401 and response.json()["reason"] == reason
