"""Journey: a person switches the page to 简体中文 and back, and the choice follows them.

An English browser switches to Chinese in the user bar: the page reloads with Gradio's labels, our
server-side notice and the tab's title in Chinese; a reload keeps it; the signed-out page follows
it; a fresh browser profile with an English Accept-Language signing in as the same person gets
Chinese; switching back to English works, on a phone too."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import DESKTOP, PHONE, ChatPage, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot
from tests.e2e.page_requests import foreign, record_requests
from tests.e2e.test_accessibility import violations

SAYS = {
    "en": {
        "title": "Company Chat",
        "send": "Send",
        "new_chat": "New chat",
        "tab": "Chat",
        "user_bar": "Signed in as",
        "switch": "Language",
        "empty": "Please type a message first.",
        "signed_out": "You are signed out",
    },
    "zh-CN": {
        "title": "公司智能助手",
        "send": "发送",
        "new_chat": "新对话",
        "tab": "对话",
        "user_bar": "当前用户",
        "switch": "语言",
        "empty": "请先输入消息。",
        "signed_out": "您已退出登录",
    },
}
NAMES = {"en": "English", "zh-CN": "简体中文"}


@pytest.fixture
def staff_preference(chat_app: ChatApp) -> Iterator[str]:
    """STAFF's user key, with no saved language before and after (other journeys sign in as them)."""
    preferences = chat_app.services.preferences
    assert preferences is not None
    key = chat_app.user_key(STAFF)
    preferences.set_language(key, None)
    yield key
    preferences.set_language(key, None)


def expect_language(chat: ChatPage, locale: str) -> None:
    """Gradio's labels, our server-written text and the tab's title are all in `locale`."""
    says, page = SAYS[locale], chat.page
    expect(page.locator("html")).to_have_attribute("lang", locale)
    expect(page.locator("#send")).to_have_text(says["send"])
    expect(page.locator("#new-chat")).to_have_text(says["new_chat"])
    expect(chat.tab(says["tab"])).to_be_visible()
    expect(page.locator("#user-bar")).to_contain_text(says["user_bar"])
    expect(page).to_have_title(says["title"])
    switch = page.get_by_role("radiogroup", name=says["switch"])
    expect(switch.get_by_role("radio", name=NAMES[locale])).to_be_checked()


def choose(chat: ChatPage, locale: str) -> None:
    """Pick `locale` in the user bar's switch; the page reloads in it."""
    chat.page.locator("#language-switch label").filter(has_text=NAMES[locale]).click()
    expect(chat.page.locator("html")).to_have_attribute("lang", locale)
    chat.expect_loaded()


def language_cookie(context: BrowserContext) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "lang"), None)


def shots(page: Page, screenshot: Screenshot, name: str) -> None:
    """The page at desktop size, then at phone size, then back."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    expect(page.locator("#language-switch")).to_be_in_viewport()
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_a_chosen_language_is_kept_on_reload_signed_out_and_on_another_browser(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    staff_preference: str,
    screenshot: Screenshot,
) -> None:
    page = open_browser(locale="en-US", viewport=DESKTOP)
    requested = record_requests(page)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    expect_language(chat, "en")
    shots(page, screenshot, "language-switch-en")

    choose(chat, "zh-CN")
    expect_language(chat, "zh-CN")
    shots(page, screenshot, "language-switch-zh-CN")
    assert violations(page) == []  # the switch among them: named, and each option in its language
    assert chat.send("").wait_refused() == SAYS["zh-CN"]["empty"]  # written by the server
    screenshot(page, "language-switch-zh-CN-notice-desktop")
    assert chat_app.services.preferences.language(staff_preference) == "zh-CN"
    cookie = language_cookie(page.context)
    assert cookie is not None and cookie["value"] == "zh-CN"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"

    chat.reload()
    expect_language(chat, "zh-CN")

    # Signed-out pages know no user: the cookie alone says which language.
    page.goto(chat_app.url + chat_app.settings.oidc.post_logout_path)
    expect(page.get_by_role("heading", level=1)).to_have_text(SAYS["zh-CN"]["signed_out"])
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    # Another device: an English browser, no cookie; signing in brings the saved choice.
    other = open_browser(locale="en-US", viewport=PHONE)
    assert language_cookie(other.context) is None
    on_phone = sign_in_to_chat(other, idp, chat_app.url, STAFF)
    expect_language(on_phone, "zh-CN")
    switch = other.locator("#language-switch")
    expect(switch).to_be_in_viewport()
    screenshot(other, "language-switch-zh-CN-other-browser-phone")

    choose(on_phone, "en")
    expect_language(on_phone, "en")
    assert chat_app.services.preferences.language(staff_preference) == "en"
    screenshot(other, "language-switch-back-to-en-phone")
    assert foreign(requested) == []


def test_a_chinese_browser_switches_to_english_and_a_new_sign_in_keeps_it(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    staff_preference: str,
    screenshot: Screenshot,
) -> None:
    page = open_browser(locale="zh-CN", viewport=PHONE)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    expect_language(chat, "zh-CN")  # no choice saved: the browser's language

    screenshot(page, "language-switch-zh-CN-browser-phone")
    choose(chat, "en")
    expect_language(chat, "en")
    screenshot(page, "language-switch-zh-CN-browser-chose-en-phone")
    assert chat.send("").wait_refused() == SAYS["en"]["empty"]

    again = open_browser(locale="zh-CN", viewport=DESKTOP)
    expect_language(sign_in_to_chat(again, idp, chat_app.url, STAFF), "en")
