"""Probes, the admin export route, the admin service's own checks on the whole app, and the admin
tab's handlers (paging, names, loading on open, inline messages, confirmations) on a real store."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import gradio as gr
import httpx
import pytest
from starlette.requests import Request

from core.audit import (
    ACCESS_DENIED,
    ADMIN_AUDIT_EXPORTED,
    ADMIN_AUDIT_VIEWED,
    ADMIN_SESSION_REVOKED,
    LOGIN_SUCCESS,
    NOT_FOUND,
    RETENTION_PURGED,
    TOKEN_REVOKED,
    AuditEvent,
)
from core.identity import User
from core.sessions import MemorySessionStore, Session
from model.fake_engine import FakeEngine
from store.api_tokens import ApiTokenStore
from store.audit_log import AuditLog
from store.database import create_database, migrate
from tests.webui.tab_handlers import BuiltTab
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    UserRevoked,
)
from webui.admin_tab import Ending, ShownSession, build_admin_tab


class SwitchableEngine(FakeEngine):
    """A fake whose readiness the test controls, and which fails the test if a probe generates."""

    def __init__(self) -> None:
        super().__init__()
        self.is_ready = False

    def ready(self) -> bool:
        return self.is_ready


def test_probes_are_public_cheap_and_honest(chat_server):
    engine = SwitchableEngine()
    chat = chat_server(engine=engine)
    assert httpx.get(f"{chat.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{chat.url}/readyz").status_code == 503
    engine.is_ready = True
    assert httpx.get(f"{chat.url}/readyz").status_code == 200
    assert engine.requests == []  # no probe ever generated


def test_admin_exports_the_audit_csv_and_the_export_is_audited(chat_server):
    chat = chat_server()
    chat.login("alice")
    admin = chat.login("admin1")
    response = admin.get("/admin/audit.csv", params={"type": LOGIN_SUCCESS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["actor"] for r in rows} == {chat.key("alice"), chat.key("admin1")}
    exported = chat.services.audit_log.query(type=ADMIN_AUDIT_EXPORTED).records
    assert [r.actor for r in exported] == [chat.key("admin1")]


def test_staff_cannot_export_the_audit_trail_and_the_attempt_is_audited(chat_server):
    chat = chat_server()
    alice = chat.login("alice")
    response = alice.get("/admin/audit.csv")
    assert response.status_code == 403
    assert "alice" not in response.text
    denied = chat.services.audit_log.query(type=ACCESS_DENIED).records
    assert [(r.actor, r.outcome) for r in denied] == [(chat.key("alice"), "not_admin")]


def test_admin_revokes_a_users_sessions_and_tokens_and_both_stop_working(chat_server):
    chat = chat_server()
    alice = chat.login("alice")
    assert alice.get("/export/none.md").status_code == 404  # logged in: the route answers
    owner = User(issuer=chat.issuer, subject="alice", groups=("staff",))
    made = chat.services.api_tokens.create(owner, "cron", datetime.now(UTC) + timedelta(days=5))
    script = {"Authorization": f"Bearer {made.secret}"}
    assert httpx.get(chat.url + "/config", headers=script, timeout=10).status_code == 200
    admin = AdminService(
        chat.services.audit_log,
        chat.services.audit,
        chat.services.sessions,
        lambda ip: None,
        tokens=chat.services.api_tokens,
    )
    ctx = AdminContext(User(issuer=chat.issuer, subject="admin1", is_admin=True), "127.0.0.1")
    assert admin.revoke_user(ctx, chat.key("alice")) == UserRevoked(sessions=1, tokens=1)
    again = alice.get("/", headers={"Accept": "text/html"})
    assert again.status_code == 302 and "/login" in again.headers["location"]
    assert httpx.get(chat.url + "/config", headers=script, timeout=10).status_code == 401
    assert chat.services.audit_log.query(type=ADMIN_SESSION_REVOKED).total == 1
    (revoked,) = chat.services.audit_log.query(type=TOKEN_REVOKED).records
    assert revoked.actor == chat.key("admin1") and revoked.target == made.token.id


def test_admin_service_refuses_non_admins_and_admins_from_outside_the_admin_network():
    class Log:
        def query(self, **_):  # pragma: no cover - must never be reached
            raise AssertionError("queried without permission")

    recorded = []

    class Sink:
        def record(self, event):
            recorded.append(event)

    def only_loopback(ip):
        if ip != "127.0.0.1":
            raise PermissionError("admin")

    admin = AdminService(Log(), Sink(), sessions=None, require_admin_ip=only_loopback)
    staff = AdminContext(User(issuer="i", subject="s"), "127.0.0.1")
    remote_admin = AdminContext(User(issuer="i", subject="a", is_admin=True), "203.0.113.9")
    for ctx, reason in ((staff, "not_admin"), (remote_admin, "ip_not_allowed:admin")):
        try:
            admin.audit_page(ctx, AuditQuery())
        except AdminRefused as refused:
            assert str(refused) == reason
        else:
            raise AssertionError("admin handler ran for a refused caller")
    assert [e.outcome for e in recorded] == ["not_admin", "ip_not_allowed:admin"]


def test_metrics_are_served_to_the_metrics_network_without_a_session_and_count_logins(chat_server):
    chat = chat_server()
    chat.login("alice")
    text = httpx.get(f"{chat.url}/metrics").text
    assert 'chat_logins_total{outcome="success"} 1.0' in text
    assert "chat_active_sessions 1.0" in text
    assert 'route="<login>"' in text and 'route="/"' in text


def test_metrics_are_refused_outside_the_metrics_network(chat_server):
    chat = chat_server(access={"metrics_allow": ["10.9.9.9/32"]})
    response = httpx.get(f"{chat.url}/metrics")
    assert response.status_code == 403
    assert "chat_" not in response.text


# -- the admin tab: paging, names, loading on open, inline messages, ending with a confirmation --

ADMIN = User("https://idp.test", "root", "root@example.test", "Rita Root", is_admin=True)
ALICE = User("https://idp.test", "alice", "alice@example.test", "Alice Staff", ("staff",))
BOB = User("https://idp.test", "bob", groups=("staff",))


def admin_tab(admin: AdminService) -> BuiltTab:
    """The audit tab built as the page builds it, its handlers called as Gradio would."""
    return BuiltTab("Audit", lambda: build_admin_tab(admin, "https://chat.test"))


def request_for(user: User, language: str = "en") -> Request:
    headers = [(b"accept-language", language.encode())]
    state = {"user": user, "client_ip": "127.0.0.1"}
    return Request({"type": "http", "headers": headers, "state": state})


def clicked(row: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [row, 0], "value": ""})


@pytest.fixture
def admin_parts(tmp_path) -> Iterator[tuple[AdminService, AuditLog, MemorySessionStore]]:
    database = create_database(f"sqlite:///{tmp_path}/admin.db")
    migrate(database)
    log, sessions = AuditLog(database), MemorySessionStore()
    tokens = ApiTokenStore(database)

    def only_admins_network(ip: str | None) -> None:
        if ip != "127.0.0.1":
            raise PermissionError("admin")

    yield AdminService(log, log, sessions, only_admins_network, tokens=tokens), log, sessions
    database.dispose()


def sign_in(sessions: MemorySessionStore, user: User, session_id: str) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    sessions.create(Session(session_id, user, now, now, later, later, ip="10.0.0.5"))


def test_audit_pages_count_from_one_and_never_pass_the_last(admin_parts):
    admin, log, _ = admin_parts
    ctx = AdminContext(ADMIN, "127.0.0.1")
    empty = admin.audit_page(ctx, AuditQuery(type=LOGIN_SUCCESS))
    assert (empty.total, empty.page, empty.pages) == (0, 1, 1)
    for _ in range(5):
        log.record(AuditEvent(LOGIN_SUCCESS, actor=ALICE.key))
    first = admin.audit_page(ctx, AuditQuery(type=LOGIN_SUCCESS, page=1, page_size=2))
    assert (first.total, first.page, first.pages, len(first.records)) == (5, 1, 3, 2)
    past = admin.audit_page(ctx, AuditQuery(type=LOGIN_SUCCESS, page=9, page_size=2))
    assert (past.page, past.pages, len(past.records)) == (3, 3, 1)
    before = admin.audit_page(ctx, AuditQuery(type=LOGIN_SUCCESS, page=-4, page_size=2))
    assert before.page == 1 and [r.id for r in before.records] == [r.id for r in first.records]


def test_opening_the_tab_loads_records_and_sessions_with_names_in_the_users_language(
    admin_parts,
):
    admin, log, sessions = admin_parts
    sign_in(sessions, ALICE, "alice-session")
    log.record(AuditEvent(LOGIN_SUCCESS, actor=ALICE.key))
    log.record(AuditEvent(LOGIN_SUCCESS, actor=BOB.key))  # signed out since: no name known
    load_audit, load_sessions = admin_tab(admin).loaders()
    zh = request_for(ADMIN, "zh-CN")

    table, summary, export, page, box = load_audit("", "", "", "", "", 1, zh)
    assert table["headers"][:3] == ["时间（UTC）", "事件", "用户"] and box["visible"]
    users = [row[2] for row in table["data"] if row[1] == LOGIN_SUCCESS]
    assert users == [BOB.key, "Alice Staff (alice@example.test)"]
    assert summary == "共 2 条记录 · 第 1 页，共 1 页" and page == 1
    assert "下载" in export and "/admin/audit.csv" in export

    listing, shown, *_rest, note = load_sessions(zh)
    assert listing["headers"] == [
        "名称",
        "电子邮件",
        "登录时间（UTC）",
        "最近活动（UTC）",
        "地址",
    ]
    assert listing["data"][0][:2] == ["Alice Staff", "alice@example.test"]
    assert ALICE.key not in str(listing) and "alice-session" not in str(listing)
    assert len(shown) == 1 and note == ""


def test_next_and_previous_stay_within_the_pages(admin_parts):
    admin, log, _ = admin_parts
    log.record(AuditEvent(LOGIN_SUCCESS, actor=ALICE.key))
    tab, en = admin_tab(admin), request_for(ADMIN)
    _, summary, _, page, _ = tab.on("audit-next")("", "", "", LOGIN_SUCCESS, "", 1, en)
    assert summary == "1 records · page 1 of 1" and page == 1
    _, summary, _, page, _ = tab.on("audit-prev")("", "", "", LOGIN_SUCCESS, "", 1, en)
    assert page == 1
    _, summary, _, page, _ = tab.on("audit-search")("", "", "", RETENTION_PURGED, "", 3, en)
    assert summary == "No records match these filters." and page == 1


def test_a_bad_date_is_answered_next_to_the_form_and_changes_nothing_else(admin_parts):
    admin, log, _ = admin_parts
    search = admin_tab(admin).on("audit-search")
    for language, expected in (("en", "Dates must look like"), ("zh-CN", "日期格式")):
        table, summary, export, page, box = search(
            "31/01/2026", "", "", "", "", 1, request_for(ADMIN, language)
        )
        assert expected in summary
        assert table == export == page == box == gr.skip()
    assert log.query(type=ADMIN_AUDIT_VIEWED).total == 0


def test_admin_ends_a_persons_access_by_row_after_a_confirmation(admin_parts):
    admin, log, sessions = admin_parts
    sign_in(sessions, ALICE, "alice-laptop")
    sign_in(sessions, ALICE, "alice-phone")
    sign_in(sessions, BOB, "bob-laptop")
    tab, en = admin_tab(admin), request_for(ADMIN)
    _, shown, *_ = tab.on("sessions-refresh")(en)
    row = next(i for i, s in enumerate(shown) if s.name == "Alice Staff (alice@example.test)")

    chosen, end_one, end_all, end_row, confirm_row, _ = tab.on("sessions-table", "select")(
        shown, en, clicked(row)
    )
    assert end_one == "End this session of Alice Staff (alice@example.test)"
    assert end_all == "End all access of Alice Staff (alice@example.test)"
    assert end_row["visible"] and not confirm_row["visible"]
    pending, question, confirm_row, _ = tab.on("user-end")(chosen, en)
    assert "every session of **Alice Staff" in question and confirm_row["visible"]
    assert len(sessions.list_active(datetime.now(UTC))) == 3  # nothing ended before confirming

    assert tab.on("sessions-cancel")(en)[0] is None
    result, listing, *_ = tab.on("sessions-confirm")(pending, en)
    assert result.startswith(r"**Alice Staff \(alice\@example\.test\)**: 2 session(s) ended")
    assert [row[0] for row in listing["data"]] == [BOB.key]  # no name known for Bob
    assert log.query(type=ADMIN_SESSION_REVOKED).records[0].target == ALICE.key

    _, shown, *_ = tab.on("sessions-refresh")(en)
    chosen, *_ = tab.on("sessions-table", "select")(shown, en, clicked(0))
    pending, question, *_ = tab.on("session-end")(chosen, en)
    assert "End this session of" in question
    result, listing, *_ = tab.on("sessions-confirm")(pending, en)
    assert "was ended" in result and listing["data"] == []


def test_hidden_admin_handlers_refuse_a_staff_session(admin_parts):
    admin, log, sessions = admin_parts
    sign_in(sessions, ALICE, "alice-laptop")
    log.record(AuditEvent(LOGIN_SUCCESS, actor=ALICE.key))
    tab, bob = admin_tab(admin), request_for(BOB)
    table, summary, _, _, box = tab.on("audit-search")("", "", "", "", "", 1, bob)
    assert summary == "Not allowed." and not box["visible"] and table["data"] == []
    listing, shown, *_rest, box, note = tab.on("sessions-refresh")(bob)
    assert note == "Not allowed." and shown == [] and listing["data"] == [] and not box["visible"]
    # A confirmation Bob's tab never asked for (its State filled by a script) is refused too.
    forged = Ending(True, ShownSession("sha256:x", ALICE.key, "Alice"))
    result, *_ = tab.on("sessions-confirm")(forged, bob)
    assert result == "Not allowed."
    assert len(sessions.list_active(datetime.now(UTC))) == 1
    denied = {r.outcome for r in log.query(type=ACCESS_DENIED).records}
    assert denied == {"not_admin"}


def test_a_display_name_cannot_put_a_link_into_the_admins_confirmation(admin_parts):
    admin, _, sessions = admin_parts
    lure = User(
        "https://idp.test", "eve", name="[Confirm here](https://evil.test)", groups=("staff",)
    )
    sign_in(sessions, lure, "eve-session")
    tab, en = admin_tab(admin), request_for(ADMIN)
    _, shown, *_ = tab.on("sessions-refresh")(en)
    chosen, *_ = tab.on("sessions-table", "select")(shown, en, clicked(0))
    _, question, *_ = tab.on("user-end")(chosen, en)
    assert "](" not in question and r"\[Confirm here\]\(https\:" in question


def test_the_user_filter_takes_a_name_or_an_email(admin_parts):
    admin, log, sessions = admin_parts
    sign_in(sessions, ALICE, "alice-laptop")
    log.record(AuditEvent(LOGIN_SUCCESS, actor=ALICE.key))
    log.record(AuditEvent(LOGIN_SUCCESS, actor=BOB.key))
    ctx = AdminContext(ADMIN, "127.0.0.1")
    for wanted in ("alice staff", "ALICE@example.test"):
        view = admin.audit_page(ctx, AuditQuery(actor=wanted, type=LOGIN_SUCCESS))
        assert [r.actor for r in view.records] == [ALICE.key]
        exported = admin.audit_csv(ctx, AuditQuery(actor=wanted, type=LOGIN_SUCCESS))
        assert ALICE.key in exported and BOB.key not in exported
    # A key fragment still works, for people the server no longer knows by name.
    view = admin.audit_page(ctx, AuditQuery(actor="|bob", type=LOGIN_SUCCESS))
    assert [r.actor for r in view.records] == [BOB.key]


def test_hidden_characters_in_records_are_shown_escaped(admin_parts):
    admin, log, _ = admin_parts
    log.record(AuditEvent(NOT_FOUND, target="invoice\u202egpj.exe\u2028\x85next"))
    [load_audit, _] = admin_tab(admin).loaders()
    table, *_ = load_audit("", "", "", NOT_FOUND, "", 1, request_for(ADMIN))
    [row] = table["data"]
    assert row[4] == "invoice\\u202egpj.exe\\u2028\\u0085next"
