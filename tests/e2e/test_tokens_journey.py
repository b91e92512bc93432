"""Journey: a staff member creates an API token, copies it, and revokes it by its row after a
confirmation, in English and Chinese, on a desktop and a phone; bad input is answered next to the
form, never by an error popup."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import TOASTS, ChatPage, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot

SCREENS = {"desktop": {"width": 1366, "height": 800}, "phone": {"width": 390, "height": 844}}
WORDS = {
    "en": {
        "tab": "API tokens",
        "create": "Create token",
        "name_header": "Name",
        "bad_name": "Name the token with 1-64 letters",
        "bad_days": "Choose an expiry between 1 and",
        "created": "created",
        "revoke": "Revoke “{name}”",
        "question": "Revoke the token {name}?",
        "confirm": "Yes, revoke",
        "cancel": "Cancel",
        "cancelled": "Nothing was changed.",
        "revoked": "Token {name} revoked.",
        "active": "active",
        "revoked_status": "revoked",
    },
    "zh-CN": {
        "tab": "API 令牌",
        "create": "创建令牌",
        "name_header": "名称",
        "bad_name": "令牌名称须为 1-64 个字母",
        "bad_days": "有效期须在 1 到",
        "created": "已创建",
        "revoke": "撤销“{name}”",
        "question": "确定撤销令牌 {name} 吗？",
        "confirm": "确定撤销",
        "cancel": "取消",
        "cancelled": "未做任何更改。",
        "revoked": "令牌 {name} 已撤销。",
        "active": "有效",
        "revoked_status": "已撤销",
    },
}


class TokensTab:
    """The API tokens tab of a signed-in browser; its table loads when the tab is opened."""

    def __init__(self, chat: ChatPage, words: dict[str, str]) -> None:
        self.page, self.words = chat.page, words
        chat.tab(words["tab"]).click()
        expect(self.page.locator("#token-table")).to_be_visible()
        header = self.page.locator("#token-table").get_by_role("columnheader").first
        expect(header).to_contain_text(words["name_header"])
        self.notice = self.page.locator("#token-notice")

    def create(self, name: str, days: str = "30") -> None:
        self.page.locator("#token-name input, #token-name textarea").fill(name)
        self.page.locator("#token-days input").fill(days)
        self.page.get_by_role("button", name=self.words["create"], exact=True).click()

    def row(self, name: str):
        return self.page.locator("#token-table").get_by_role("row").filter(has_text=name).first

    def choose(self, name: str) -> None:
        """Click the token's row; the Revoke button then names it."""
        self.row(name).get_by_text(name, exact=True).click()
        expect(self.page.locator("#token-revoke")).to_have_text(
            self.words["revoke"].format(name=name)
        )
        self.page.locator("#token-revoke").click()
        expect(self.page.locator("#token-question")).to_contain_text(
            self.words["question"].format(name=name)
        )


def expect_no_error_popup_or_badge(page: Page) -> None:
    expect(page.locator(TOASTS)).to_have_count(0)
    expect(page.locator(".error:visible, [data-testid=error]:visible")).to_have_count(0)


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("locale", WORDS)
def test_staff_create_a_token_and_revoke_it_by_its_row_after_confirming(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    locale: str,
    screen: str,
) -> None:
    words = WORDS[locale]
    page = open_browser(locale=locale, viewport=SCREENS[screen])
    tokens = TokensTab(sign_in_to_chat(page, idp, chat_app.url, STAFF), words)
    shot = f"tokens-{locale}-{screen}"

    # Bad input: a message next to the form in the user's language, no popup, no red badges.
    tokens.create("")
    expect(tokens.notice).to_contain_text(words["bad_name"])
    expect_no_error_popup_or_badge(page)
    screenshot(page, f"{shot}-bad-name")
    tokens.create("ci", days="500")
    expect(tokens.notice).to_contain_text(words["bad_days"])
    expect_no_error_popup_or_badge(page)

    name = f"laptop-{uuid.uuid4().hex[:6]}"
    tokens.create(name)
    expect(tokens.notice).to_contain_text(words["created"])
    secret = page.locator("#token-secret input, #token-secret textarea")
    expect(secret).to_have_value(re.compile(r"^chat_pat_"))
    expect(tokens.row(name)).to_contain_text(words["active"])
    assert secret.input_value() not in page.locator("#token-table").inner_text()
    screenshot(page, f"{shot}-created")

    # Choose it, change one's mind: nothing is revoked.
    tokens.choose(name)
    screenshot(page, f"{shot}-confirm")
    page.get_by_role("button", name=words["cancel"], exact=True).click()
    expect(tokens.notice).to_have_text(words["cancelled"])
    expect(page.locator("#token-confirm-row")).to_be_hidden()
    (made,) = [t for t in chat_app.services.api_tokens.list_tokens(chat_app.user_key(STAFF))
               if t.name == name]  # fmt: skip
    assert made.revoked_at is None

    # Choose it again and confirm.
    tokens.choose(name)
    page.get_by_role("button", name=words["confirm"], exact=True).click()
    expect(tokens.notice).to_have_text(words["revoked"].format(name=name))
    expect(tokens.row(name)).to_contain_text(words["revoked_status"])
    expect(page.locator("#token-revoke")).to_be_hidden()
    expect(page.locator("#token-secret")).to_be_hidden()  # the revoked token's secret goes too
    screenshot(page, f"{shot}-revoked")
    assert chat_app.services.api_tokens.get(made.id).revoked_at is not None
