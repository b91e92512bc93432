"""Journeys 3 and 4: an admin audits a staff member's activity, exports it and ends their sessions;
the staff member's own page has no audit tab and the admin export refuses their session. And the
audit tab in English and Chinese, on a desktop and a phone: paging, bad dates, confirmations."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from core.audit import NOT_FOUND, AuditEvent
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import TOASTS, ChatPage, sign_in_to_chat
from tests.e2e.harness import ADMIN, STAFF, Idp
from tests.e2e.idp_pages import Screenshot


class AuditTab:
    """The admin's Audit tab; its records and the sessions load when it is opened."""

    def __init__(self, chat: ChatPage, name: str = "Audit") -> None:
        self.page = chat.page
        chat.tab(name).click()
        expect(self.page.locator("#audit-search")).to_be_visible()
        # Loaded on opening, before any button is pressed.
        expect(self.page.locator("#audit-table").get_by_role("row").nth(1)).to_be_visible()
        expect(self.page.locator("#sessions-table").get_by_role("row").nth(1)).to_be_visible()
        self.summary = self.page.locator("#audit-summary")

    def rows(self) -> Locator:
        header = self.page.get_by_role("columnheader")
        return self.page.locator("#audit-table").get_by_role("row").filter(has_not=header)

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
        rows = self.rows()
        expect(rows.filter(has_text=showing).first).to_be_visible()
        # The table loaded on opening is replaced by the filtered result.
        if user:
            expect(rows.filter(has_not_text=user)).to_have_count(0)
        if event_type:
            expect(rows.filter(has_not_text=event_type)).to_have_count(0)
        return rows.all_inner_texts()

    def export_csv(self) -> list[dict[str, str]]:
        """Download the CSV for the current filters, as a browser download."""
        with self.page.expect_download() as started:
            self.page.locator("#audit-export a", has_text="CSV").click()
        download = started.value
        assert download.suggested_filename == "audit.csv"
        return list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))

    def choose_session(self, person: str) -> None:
        """Click a row of the sessions table: the buttons then name the person."""
        row = self.page.locator("#sessions-table").get_by_role("row").filter(has_text=person)
        row.first.get_by_text(person, exact=True).click()
        expect(self.page.locator("#user-end")).to_contain_text(person)

    def end_all_access(self, person: str, confirm_word: str = "Yes, end it") -> str:
        """End every session and token of `person`: their row, the button, the confirmation."""
        self.choose_session(person)
        self.page.locator("#user-end").click()
        expect(self.page.locator("#sessions-question")).to_contain_text(person)
        self.page.get_by_role("button", name=confirm_word, exact=True).click()
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
    # Found by the name people know; the records keep the key the IdP's issuer and subject make.
    rows = audit.search(showing=marker, user="Alice Staff", since=since)
    assert any("login.success" in row for row in rows), rows
    # The user column names people as the IdP names them, not by their internal keys.
    users = {[cell.strip() for cell in row.split("\n") if cell.strip()][2] for row in rows}
    assert users == {"Alice Staff (alice@example.test)"}, rows
    assert any("chat.request" in row and marker in row for row in rows), rows
    screenshot(admin.page, "admin-audit-staff")

    exported = audit.export_csv()
    assert {r["actor"] for r in exported} == {staff_key}
    assert "login.success" in {r["type"] for r in exported}
    assert any(r["type"] == "chat.request" and marker in r["details"] for r in exported)

    rows = audit.search(showing=marker, user="Alice Staff", event_type="chat.request", since=since)
    assert rows and all("chat.request" in row for row in rows), rows
    assert any(marker in row for row in rows)
    screenshot(admin.page, "admin-audit-filtered")

    ended = audit.end_all_access("Alice Staff")
    assert "Alice Staff (alice@example.test)" in ended and "session(s) ended" in ended, ended
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


SCREENS = {"desktop": {"width": 1366, "height": 800}, "phone": {"width": 390, "height": 844}}
WORDS = {
    "en": {
        "tab": "Audit",
        "header": "Time (UTC)",
        "search": "Search",
        "next": "Next ▶",
        "previous": "◀ Previous",
        "summary": "60 records · page {page} of 2",
        "bad_date": "Dates must look like 2026-01-31",
        "end_user": "End all access of Alice Staff (alice@example.test)",
        "question": "End every session of Alice Staff (alice@example.test)",
        "cancel": "Cancel",
        "cancelled": "Nothing was changed.",
        "tokens_tab": "API tokens",
        "owner": "Owner",
    },
    "zh-CN": {
        "tab": "审计",
        "header": "时间（UTC）",
        "search": "搜索",
        "next": "下一页 ▶",
        "previous": "◀ 上一页",
        "summary": "共 60 条记录 · 第 {page} 页，共 2 页",
        "bad_date": "日期格式应为 2026-01-31",
        "end_user": "结束 Alice Staff (alice@example.test) 的全部访问",
        "question": "确定结束 Alice Staff (alice@example.test) 的所有会话",
        "cancel": "取消",
        "cancelled": "未做任何更改。",
        "tokens_tab": "API 令牌",
        "owner": "所有者",
    },
}


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("locale", WORDS)
def test_audit_tab_pages_answers_bad_dates_inline_and_confirms_before_ending_access(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    locale: str,
    screen: str,
) -> None:
    words, shot = WORDS[locale], f"audit-{locale}-{screen}"
    marker = f"paging-{uuid.uuid4().hex[:8]}"
    for number in range(60):
        chat_app.services.audit.record(AuditEvent(NOT_FOUND, target=f"{marker}-{number}"))
    sign_in_to_chat(open_browser(), idp, chat_app.url, STAFF)  # someone with a session
    page = open_browser(locale=locale, viewport=SCREENS[screen])
    audit = AuditTab(sign_in_to_chat(page, idp, chat_app.url, ADMIN), words["tab"])
    expect(page.locator("#audit-table").get_by_role("columnheader").first).to_contain_text(
        words["header"]
    )
    screenshot(page, f"{shot}-opened")

    # A date that cannot be read: said next to the filters, no popup, the table stays.
    page.locator("#audit-since textarea").fill("31/01/2026")
    page.get_by_role("button", name=words["search"], exact=True).click()
    expect(audit.summary).to_contain_text(words["bad_date"])
    expect(page.locator(TOASTS)).to_have_count(0)
    expect(page.locator(".error:visible")).to_have_count(0)
    screenshot(page, f"{shot}-bad-date")

    # Paging counts from 1 and never passes the last page.
    page.locator("#audit-since textarea").fill("")
    page.locator("#audit-text textarea").fill(marker)
    page.locator("#audit-type input").fill(NOT_FOUND)  # each search is audited, with its text
    page.get_by_role("option", name=NOT_FOUND, exact=True).click()
    page.get_by_role("button", name=words["search"], exact=True).click()
    expect(audit.summary).to_have_text(words["summary"].format(page=1))
    page.get_by_role("button", name=words["previous"], exact=True).click()
    expect(audit.summary).to_have_text(words["summary"].format(page=1))
    for _ in range(2):
        page.get_by_role("button", name=words["next"], exact=True).click()
        expect(audit.summary).to_have_text(words["summary"].format(page=2))
    expect(page.locator("#audit-page input")).to_have_value("2")
    expect(audit.rows()).to_have_count(10)
    page.locator("#audit-page input").fill("9")
    page.locator("#audit-page input").press("Enter")
    expect(audit.summary).to_have_text(words["summary"].format(page=2))
    expect(page.locator("#audit-page input")).to_have_value("2")
    screenshot(page, f"{shot}-last-page")

    # Ending a person's access asks first; cancelling ends nothing.
    audit.choose_session("Alice Staff")
    expect(page.locator("#user-end")).to_have_text(words["end_user"])
    page.locator("#user-end").click()
    expect(page.locator("#sessions-question")).to_contain_text(words["question"])
    screenshot(page, f"{shot}-confirm-end")
    page.get_by_role("button", name=words["cancel"], exact=True).click()
    expect(page.locator("#revoke-result")).to_have_text(words["cancelled"])
    assert chat_app.active_sessions(STAFF), "cancelling ended the sessions"

    # The admin's API tokens tab lists everyone's tokens by owner, loaded on opening.
    page.get_by_role("tab", name=words["tokens_tab"], exact=True).click()
    everyone = page.locator("#all-tokens-table")
    expect(everyone.get_by_role("columnheader").first).to_contain_text(words["owner"])
    screenshot(page, f"tokens-admin-{locale}-{screen}")
