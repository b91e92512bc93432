"""Probes, the admin export route, and the admin service's own checks, on the whole app."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx

from core.audit import (
    ACCESS_DENIED,
    ADMIN_AUDIT_EXPORTED,
    ADMIN_SESSION_REVOKED,
    LOGIN_SUCCESS,
    TOKEN_REVOKED,
)
from core.identity import User
from model.fake_engine import FakeEngine
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    UserRevoked,
)


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
