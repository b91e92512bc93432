"""Personal API tokens at the route gate, over real loopback sockets: who gets in, and what the
refused see (a clear 401/403 JSON, logged and audited)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from auth.bearer_tokens import PersonalTokenAuthenticator
from core.api_tokens import TOKEN_PREFIX
from core.audit import TOKEN_REFUSED, MemoryAuditSink
from core.identity import User
from store.api_tokens import ApiTokenStore
from store.database import create_database, migrate
from tests.auth.bearer_app import Clock, gated_app
from tests.auth.loopback_server import client_from, serve

ALICE = User("https://idp.test", "alice-sub", "a@corp.example", "Alice", ("staff",))
ADMIN = User("https://idp.test", "root-sub", groups=("staff", "chat-admins"), is_admin=True)


class Harness:
    def __init__(self, url: str, tokens: ApiTokenStore, audit: MemoryAuditSink, clock: Clock):
        self.url, self.tokens, self.audit, self.clock = url, tokens, audit, clock

    def issue(self, owner: User = ALICE, days: int = 30, **kw) -> str:
        name = kw.pop("name", "script")
        return self.tokens.create(owner, name, self.clock() + timedelta(days=days), **kw).secret

    def get(self, path: str, token: str | None, source: str = "127.0.0.1", **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with client_from(source, self.url) as client:
            return client.get(path, headers=headers, **kw)


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    database = create_database(f"sqlite:///{tmp_path}/tokens.db")
    migrate(database)
    clock, audit = Clock(), MemoryAuditSink()
    tokens = ApiTokenStore(database, clock)
    authenticator = PersonalTokenAuthenticator(tokens, audit, clock)
    try:
        with serve(gated_app([authenticator], audit)) as url:
            yield Harness(url, tokens, audit, clock)
    finally:
        database.dispose()


def test_a_valid_token_acts_as_its_user_without_admin(harness):
    response = harness.get("/whoami", harness.issue())
    assert response.status_code == 200
    assert response.json() == {"key": ALICE.key, "admin": False, "groups": ["staff"]}


def test_admin_scope_token_of_an_admin_is_admin(harness):
    plain = harness.get("/whoami", harness.issue(ADMIN, name="plain")).json()
    scoped = harness.get("/whoami", harness.issue(ADMIN, name="ops", admin_scope=True)).json()
    assert plain["admin"] is False and scoped["admin"] is True


@pytest.mark.parametrize(
    "credential",
    [TOKEN_PREFIX + "Q" * 43, "not-a-token-at-all", "eyJhbGciOiJub25lIn0.e30."],
)
def test_unknown_tokens_get_a_clear_401_and_are_audited(harness, credential, caplog):
    with caplog.at_level(logging.WARNING, logger="chat.auth"):
        response = harness.get("/whoami", credential)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["reason"] == "unknown"
    assert "not valid" in response.json()["message"]
    assert "refused: unknown" in caplog.text and credential not in caplog.text
    [event] = harness.audit.of_type(TOKEN_REFUSED)
    assert event.outcome == "unknown" and event.ip == "127.0.0.1"


def test_a_revoked_token_is_refused_as_revoked(harness):
    secret = harness.issue()
    assert harness.get("/whoami", secret).status_code == 200
    token = harness.tokens.find(secret)
    harness.tokens.revoke(token.id, by=ALICE.key)

    response = harness.get("/whoami", secret)
    assert response.status_code == 401 and response.json()["reason"] == "revoked"
    [event] = harness.audit.of_type(TOKEN_REFUSED)
    assert event.actor == ALICE.key and event.target == token.id


def test_a_token_stops_working_when_it_expires(harness):
    secret = harness.issue(days=1)
    harness.clock.advance(hours=23, minutes=59)
    assert harness.get("/whoami", secret).status_code == 200
    harness.clock.advance(minutes=1)
    response = harness.get("/whoami", secret)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_a_token_outside_its_address_ranges_gets_403(harness):
    secret = harness.issue(source_cidrs=("127.0.0.2/32",))
    refused = harness.get("/whoami", secret, source="127.0.0.1")
    assert refused.status_code == 403
    assert refused.json()["reason"] == "address_not_allowed"
    assert harness.get("/whoami", secret, source="127.0.0.2").status_code == 200


def test_a_token_in_the_query_string_is_never_accepted(harness):
    secret = harness.issue()
    for name in ("access_token", "token", "authorization"):
        response = harness.get("/whoami", None, params={name: secret})
        assert response.status_code == 401
        assert response.json()["error"] == "not_authenticated"


def test_last_use_is_recorded_but_not_on_every_request(harness):
    secret = harness.issue()
    harness.get("/whoami", secret, source="127.0.0.2")
    first = harness.tokens.find(secret)
    assert first.last_used_at == harness.clock() and first.last_ip == "127.0.0.2"

    harness.clock.advance(seconds=30)
    harness.get("/whoami", secret)
    assert harness.tokens.find(secret).last_used_at == first.last_used_at
    harness.clock.advance(seconds=31)
    harness.get("/whoami", secret)
    assert harness.tokens.find(secret).last_ip == "127.0.0.1"


def test_a_script_retrying_a_dead_token_is_audited_once_a_minute(harness):
    for _ in range(5):
        assert harness.get("/whoami", TOKEN_PREFIX + "Z" * 43).status_code == 401
    assert len(harness.audit.of_type(TOKEN_REFUSED)) == 1
    harness.clock.advance(seconds=61)
    harness.get("/whoami", TOKEN_PREFIX + "Z" * 43)
    assert len(harness.audit.of_type(TOKEN_REFUSED)) == 2


def test_basic_credentials_are_not_tokens(harness):
    with client_from("127.0.0.1", harness.url) as client:
        response = client.get("/whoami", headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"
