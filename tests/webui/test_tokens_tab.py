"""The API tokens tab and its service: what a user may create and revoke, what only admins see,
and the audit records, with a real SQLite store behind it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import gradio as gr
import pytest
from starlette.requests import Request

from auth.api_settings import ApiSettings
from core.audit import ACCESS_DENIED, TOKEN_CREATED, TOKEN_REVOKED, MemoryAuditSink
from core.identity import User
from store.api_tokens import ApiTokenStore
from store.database import create_database, migrate
from tests.webui.tab_handlers import BuiltTab
from webui.tokens_service import TokenContext, TokenRequestInvalid, TokensRefused, TokensService
from webui.tokens_tab import Shown, build_tokens_tab

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


def tokens_tab(service: TokensService, user: User) -> BuiltTab:
    """The tokens tab built as the page builds it, its handlers called as Gradio would."""
    return BuiltTab("API tokens", lambda: build_tokens_tab(service, user))


def request_for(user: User, ip: str = "127.0.0.1", language: str = "en") -> Request:
    headers = [(b"accept-language", language.encode())]
    return Request({"type": "http", "headers": headers, "state": {"user": user, "client_ip": ip}})


def clicked(row: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [row, 0], "value": ""})


def test_non_admins_get_no_admin_handlers_in_the_tab(service):
    mine = {"load_mine", "on_create", "pick", "ask", "cancel", "on_revoke"}
    assert tokens_tab(service, ALICE).names() == mine
    assert tokens_tab(service, ADMIN).names() == mine | {"everyone", "open_everyone", "revoke_any"}


def test_opening_the_tab_loads_the_users_tokens_in_their_language(service):
    service.create(ctx(ALICE), "laptop", 7)
    service.create(ctx(BOB), "bobs", 7)
    [load] = tokens_tab(service, ALICE).loaders()
    table, shown, *_rest, box = load(request_for(ALICE, language="zh-CN,zh;q=0.9"))
    assert table["headers"][:2] == ["名称", "状态"]
    assert table["data"][0][:2] == ["laptop", "有效"]
    assert [t.name for t in shown] == ["laptop"] and box["visible"]
    assert len(tokens_tab(service, ADMIN).loaders()) == 2  # the admin's table of everyone's too


def test_the_tab_shows_the_secret_once_and_lists_without_it(service):
    on_create = tokens_tab(service, ALICE).on("token-create")
    secret, notice, table, *_rest, secret_box = on_create(
        "laptop", 7, "", False, request_for(ALICE)
    )
    assert secret.startswith("chat_pat_") and "laptop" in notice
    assert table["data"][0][:2] == ["laptop", "active"] and secret not in str(table)
    assert secret_box["visible"]


@pytest.mark.parametrize(
    ("name", "days", "cidrs", "english", "chinese"),
    [
        ("", 7, "", "Name the token", "令牌名称须为"),
        ("ci", 500, "", "between 1 and 90", "1 到 90 天"),
        ("ci", 0, "", "between 1 and 90", "1 到 90 天"),
        ("ci", float("nan"), "", "between 1 and 90", "1 到 90 天"),
        ("ci", float("inf"), "", "between 1 and 90", "1 到 90 天"),
        ("ci", 7, "10.0.0.300", "not an address range", "不是地址范围"),
    ],
)
def test_bad_input_is_answered_next_to_the_form_in_the_users_language(
    service, name, days, cidrs, english, chinese
):
    on_create = tokens_tab(service, ALICE).on("token-create")
    for language, expected in (("en-GB", english), ("zh-CN", chinese)):
        secret, notice, *others = on_create(
            name, days, cidrs, False, request_for(ALICE, language=language)
        )
        assert expected in notice
        # Nothing else changes: no secret, no table, no error state on other components.
        assert secret == gr.skip() and all(o == gr.skip() for o in others)
    assert service.list_mine(ctx(ALICE)) == []


def test_a_token_is_revoked_by_its_row_after_a_confirmation_naming_it(service, audit):
    service.create(ctx(ALICE), "laptop", 7)
    service.create(ctx(ALICE), "ci", 7)
    tab = tokens_tab(service, ALICE)
    [load] = tab.loaders()
    alice = request_for(ALICE)
    shown = load(alice)[1]
    row = [t.name for t in shown].index("laptop")

    picked = tab.on("token-table", "select")(shown, alice, clicked(row))
    chosen, revoke_label, revoke_row, confirm_row, _ = picked
    assert chosen.name == "laptop" and revoke_label == "Revoke “laptop”" and revoke_row["visible"]
    assert not confirm_row["visible"]
    assert audit.of_type(TOKEN_REVOKED) == []  # choosing is not revoking

    pending, question, confirm_row, _ = tab.on("token-revoke")(chosen, alice)
    assert "laptop" in question and confirm_row["visible"]
    assert audit.of_type(TOKEN_REVOKED) == []  # asking is not revoking either

    cancelled, hidden, message = tab.on("token-cancel")(alice)
    assert cancelled is None and not hidden["visible"] and "Nothing was changed" in message

    notice, table, shown, *_, secret, secret_box = tab.on("token-confirm")(pending, alice)
    assert "laptop" in notice and "revoked" in notice
    assert secret == "" and not secret_box["visible"]
    statuses = {row[0]: row[1] for row in table["data"]}
    assert statuses == {"laptop": "revoked", "ci": "active"}
    [event] = audit.of_type(TOKEN_REVOKED)
    assert event.target == pending.id and event.details["by_admin"] is False


def test_a_revoked_token_offers_no_revoke_button(service):
    made = service.create(ctx(ALICE), "old", 7).token
    service.revoke_mine(ctx(ALICE), made.id)
    tab = tokens_tab(service, ALICE)
    alice = request_for(ALICE, language="zh-CN")
    shown = tab.loaders()[0](alice)[1]
    chosen, _, revoke_row, _, notice = tab.on("token-table", "select")(shown, alice, clicked(0))
    assert chosen is None and not revoke_row["visible"] and "已撤销" in notice
    # A script sending no row, one past the table, or made-up event data chooses nothing.
    made_up = [gr.EventData(None, data) for data in (None, "index", {"index": ["0", 0]}, {})]
    for event in (None, clicked(7), *made_up):
        chosen, _, revoke_row, _, notice = tab.on("token-table", "select")(shown, alice, event)
        assert chosen is None and not revoke_row["visible"] and "请先" in notice


def test_tab_handlers_act_for_the_requests_user_not_the_page_owner(service):
    admin_tab = tokens_tab(service, ADMIN)
    alices = service.create(ctx(ALICE), "ci", 5).token
    bob = request_for(BOB)
    # Everyone's tokens, through the admin page's hidden handlers, with Bob's session.
    notice, table, shown, *_ = admin_tab.on("all-tokens-refresh")(bob)
    assert notice == "Not allowed." and table["data"] == [] and shown == []
    forged = Shown(alices.id, "ci", "active")
    notice, *_ = admin_tab.on("any-token-confirm")(forged, bob)
    assert notice == "Not allowed."
    notice, table, *_ = admin_tab.on("token-confirm")(forged, bob)  # "mine": Bob owns none
    assert "no longer active" in notice and table["data"] == []
    assert service.list_all(ctx(ADMIN))[0].status(NOW) == "active"
    _, notice, *_ = admin_tab.on("token-create")("x", 5, "", True, bob)
    assert notice == "Not allowed."
    assert service.list_mine(ctx(BOB)) == []


def test_admins_see_owners_by_name_and_revoke_with_a_confirmation(service):
    alice = User("https://idp.test", "alice", "alice@example.test", "Alice Staff", ("staff",))
    service.create(ctx(alice), "ci", 5)
    tab = tokens_tab(service, ADMIN)
    admin = request_for(ADMIN)
    notice, table, shown, *_ = tab.on("all-tokens-refresh")(admin)
    assert table["headers"][:3] == ["Owner", "E-mail", "Name"]
    assert table["data"][0][:3] == ["Alice Staff", "alice@example.test", "ci"]
    assert alice.key not in str(table)
    chosen, *_ = tab.on("all-tokens-table", "select")(shown, admin, clicked(0))
    pending, question, *_ = tab.on("any-token-revoke")(chosen, admin)
    assert "Alice Staff" in question and "ci" in question
    notice, table, *_ = tab.on("any-token-confirm")(pending, admin)
    assert "revoked" in notice and table["data"][0][3] == "revoked"
