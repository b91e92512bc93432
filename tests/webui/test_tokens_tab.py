"""The API tokens tab and its service: what a user may create and revoke, what only admins see,
and the audit records, with a real SQLite store behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import gradio as gr
import pytest
from starlette.requests import Request

from auth.api_settings import ApiSettings
from core.audit import ACCESS_DENIED, TOKEN_CREATED, TOKEN_REVOKED, MemoryAuditSink
from core.identity import User
from store.api_tokens import ApiTokenStore
from store.database import create_database, migrate
from webui.tokens_service import TokenContext, TokenRequestInvalid, TokensRefused, TokensService
from webui.tokens_tab import build_tokens_tab

ALICE = User("https://idp.test", "alice", groups=("staff",))
BOB = User("https://idp.test", "bob", groups=("staff",))
ADMIN = User("https://idp.test", "root", groups=("staff", "chat-admins"), is_admin=True)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def refuse_outside_loopback(ip: str | None) -> None:
    if not (ip or "").startswith("127."):
        raise PermissionError("admin address")


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def service(tmp_path, audit) -> Iterator[TokensService]:
    database = create_database(f"sqlite:///{tmp_path}/tab.db")
    migrate(database)
    settings = ApiSettings(token_max_days=90, max_tokens_per_user=3)
    yield TokensService(
        ApiTokenStore(database, lambda: NOW), audit, settings, refuse_outside_loopback, lambda: NOW
    )
    database.dispose()


def ctx(user: User, ip: str = "127.0.0.1") -> TokenContext:
    return TokenContext(user, ip)


def test_created_tokens_expire_within_the_maximum_and_are_audited(service, audit):
    made = service.create(ctx(ALICE), " ci job ", 90, "10.0.0.1, 192.168.0.0/24")
    assert made.token.name == "ci job" and made.token.expires_at == NOW + timedelta(days=90)
    assert made.token.source_cidrs == ("10.0.0.1/32", "192.168.0.0/24")
    [event] = audit.of_type(TOKEN_CREATED)
    assert event.actor == ALICE.key and event.target == made.token.id
    assert made.secret not in str(event)
    with pytest.raises(TokenRequestInvalid, match="between 1 and 90"):
        service.create(ctx(ALICE), "forever", 91)


@pytest.mark.parametrize(
    ("name", "cidrs", "message"),
    [
        ("", "", "Name the token"),
        ("<script>", "", "Name the token"),
        ("ok", "10.0.0.300", "not an address"),
    ],
)
def test_bad_input_gets_a_message_that_says_what_to_fix(service, name, cidrs, message):
    with pytest.raises(TokenRequestInvalid, match=message):
        service.create(ctx(ALICE), name, 5, cidrs)


def test_names_are_unique_among_active_tokens_and_the_count_is_capped(service):
    service.create(ctx(ALICE), "one", 5)
    with pytest.raises(TokenRequestInvalid, match="already have"):
        service.create(ctx(ALICE), "one", 5)
    service.create(ctx(ALICE), "two", 5)
    service.create(ctx(ALICE), "three", 5)
    with pytest.raises(TokenRequestInvalid, match="too many"):
        service.create(ctx(ALICE), "four", 5)


def test_only_admins_get_admin_scope(service, audit):
    with pytest.raises(TokensRefused):
        service.create(ctx(ALICE), "sneaky", 5, admin_scope=True)
    assert audit.of_type(ACCESS_DENIED)[0].outcome == "not_admin"
    with pytest.raises(TokensRefused):
        service.create(ctx(ADMIN, ip="203.0.113.9"), "remote", 5, admin_scope=True)
    assert service.create(ctx(ADMIN), "ops", 5, admin_scope=True).token.admin_scope


def test_a_token_cannot_mint_or_revoke_tokens(service):
    made = service.create(ctx(ALICE), "ci", 5)
    as_token = ctx(made.token.owner)  # the User a request with this token carries
    with pytest.raises(TokensRefused):
        service.create(as_token, "successor", 90)
    with pytest.raises(TokensRefused):
        service.revoke_mine(as_token, made.token.id)


def test_users_revoke_only_their_own_admins_revoke_any(service, audit):
    alices = service.create(ctx(ALICE), "ci", 5).token
    assert service.revoke_mine(ctx(BOB), alices.id) is False
    with pytest.raises(TokensRefused):
        service.list_all(ctx(BOB))
    with pytest.raises(TokensRefused):
        service.revoke_any(ctx(BOB), alices.id)
    assert service.list_mine(ctx(BOB)) == []

    assert [t.id for t in service.list_all(ctx(ADMIN))] == [alices.id]
    assert service.revoke_any(ctx(ADMIN), alices.id) is True
    [event] = audit.of_type(TOKEN_REVOKED)
    assert event.actor == ADMIN.key
    assert event.details["owner"] == ALICE.key and event.details["by_admin"] is True


# -- the tab: layout per user and handlers that re-check the request's user --


def handlers(service: TokensService, user: User) -> dict[str, Callable[..., Any]]:
    with gr.Blocks() as page:
        build_tokens_tab(service, user)
    return {fn.name: fn.fn for fn in page.fns.values()}


def request_for(user: User, ip: str = "127.0.0.1") -> Request:
    return Request({"type": "http", "headers": [], "state": {"user": user, "client_ip": ip}})


def test_non_admins_get_no_admin_handlers_in_the_tab(service):
    assert set(handlers(service, ALICE)) == {"on_create", "on_revoke"}
    assert set(handlers(service, ADMIN)) == {"on_create", "on_revoke", "everyone", "revoke_any"}


def test_the_tab_shows_the_secret_once_and_lists_without_it(service):
    on_create = handlers(service, ALICE)["on_create"]
    secret, notice, rows = on_create("laptop", 7, "", False, request_for(ALICE))
    assert secret.startswith("chat_pat_") and "laptop" in notice
    assert rows[0][1:3] == ["laptop", "active"] and secret not in str(rows)


def test_tab_handlers_act_for_the_requests_user_not_the_page_owner(service):
    admin_tab = handlers(service, ADMIN)
    service.create(ctx(ALICE), "ci", 5)
    with pytest.raises(gr.Error, match="Not allowed"):
        admin_tab["everyone"](request_for(BOB))
    with pytest.raises(gr.Error, match="between 1 and 90"):
        admin_tab["on_create"]("x", 500, "", False, request_for(BOB))
    with pytest.raises(gr.Error, match="Not allowed"):
        admin_tab["on_create"]("x", 5, "", True, request_for(BOB))
