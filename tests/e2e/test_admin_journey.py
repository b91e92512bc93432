"""Journeys 3 and 4: an admin audits a staff member's activity, exports it and ends their sessions;
the staff member's own page has no audit tab and the admin export refuses their session."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import ChatPage, sign_in_to_chat
from tests.e2e.harness import ADMIN, STAFF, Idp
from tests.e2e.idp_pages import Screenshot


class AuditTab:
    """The admin's Audit tab."""

    def __init__(self, chat: ChatPage) -> None:
        self.page = chat.page
        chat.tab("Audit").click()
        expect(self.page.locator("#audit-search")).to_be_visible()

    def search(
        self, *, showing: str, user: str = "", event_type: str = "", since: str = ""
    ) -> list[str]:
        """Fill the filters, press Search, wait for a row `showing` a text; the rows' texts."""
        self.page.locator("#audit-since textarea").fill(since)
        self.page.locator("#audit-user textarea").fill(user)
        if event_type:
            self.page.locator("#audit-type input").fill(event_type)
            self.page.get_by_role("option", name=event_type, exact=True).click()
        self.page.locator("#audit-search").click()
        rows = (
            self.page.locator("#audit-table").get_by_role("row").filter(has_not_text="time (UTC)")
        )
        expect(rows.filter(has_text=showing).first).to_be_visible()
        if event_type:  # the table has been replaced by the filtered result
            expect(rows.filter(has_not_text=event_type)).to_have_count(0)
        return rows.all_inner_texts()

    def export_csv(self) -> list[dict[str, str]]:
        """Download the CSV for the current filters, as a browser download."""
        with self.page.expect_download() as started:
            self.page.locator("#audit-export a", has_text="CSV").click()
        download = started.value
        assert download.suggested_filename == "audit.csv"
        return list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))

    def revoke(self, user_key: str) -> str:
        self.page.locator("#revoke-target textarea").fill(user_key)
        self.page.locator("#sessions-revoke").click()
        result = self.page.locator("#revoke-result")
        expect(result).to_contain_text("ended")
        return result.inner_text()


def test_admin_finds_exports_and_revokes_staff_activity(
    page: Page,
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    marker = f"journey three {uuid.uuid4().hex[:8]}"
    staff = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    staff.send(f"Please summarise the notes ({marker})").wait_done()
    staff_key = chat_app.user_key(STAFF)

    admin = sign_in_to_chat(open_browser(), idp, chat_app.url, ADMIN)
    audit = AuditTab(admin)
    rows = audit.search(showing=marker, user=staff_key, since=since)
    assert any("login.success" in row for row in rows), rows
    assert any("chat.request" in row and marker in row for row in rows), rows
    screenshot(admin.page, "admin-audit-staff")

    exported = audit.export_csv()
    assert {r["actor"] for r in exported} == {staff_key}
    assert "login.success" in {r["type"] for r in exported}
    assert any(r["type"] == "chat.request" and marker in r["details"] for r in exported)

    rows = audit.search(showing=marker, user=staff_key, event_type="chat.request", since=since)
    assert rows and all("chat.request" in row for row in rows), rows
    assert any(marker in row for row in rows)
    screenshot(admin.page, "admin-audit-filtered")

    ended = audit.revoke(staff_key)
    assert int(ended.split()[0]) >= 1, ended
    screenshot(admin.page, "admin-sessions-revoked")
    assert chat_app.active_sessions(STAFF) == []

    # The staff member's next action is refused, and sends their browser to the login page.
    staff.message_box.fill(f"after revocation ({marker})")
    with (
        page.expect_request(lambda r: r.is_navigation_request() and "/login?" in r.url) as to_login,
        page.expect_response("**/gradio_api/queue/join*") as refused,
    ):
        page.locator("#send").click()
    assert refused.value.status == 401
    assert to_login.value.url.startswith(chat_app.url + "/login?next=")
    staff.expect_loaded()  # the IdP session lives on, so login completes without a form
    expect(staff.user_messages.filter(has_text="after revocation")).to_have_count(0)
    assert len(chat_app.active_sessions(STAFF)) == 1  # a new session, from a new login


def test_staff_page_has_no_audit_tab_and_admin_export_refuses_staff(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    staff = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    expect(staff.tab("Chat")).to_be_visible()
    expect(staff.tab("Audit")).to_have_count(0)
    expect(page.locator("#audit-search, #audit-table, #sessions-revoke")).to_have_count(0)
    screenshot(page, "staff-no-audit-tab")

    # The admin handler behind the CSV link, called with the staff member's own session.
    response = page.request.get(chat_app.url + "/admin/audit.csv")
    assert response.status == 403, response.text()[:200]
    assert "login.success" not in response.text()
