"""A session that ends while the page is open (here: an admin ends it) sends the next Send to the
login page; after signing in again the unsent message is back in the box, with a notice saying why.
On a shared computer the next person to sign in in that tab does not get it, nor does anyone later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import ChatPage, poll, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot, sign_in

DRAFT = "A long question I typed while my session ran out: how do I file travel expenses?"
KEPT = "chat-signed-in-again"  # the sessionStorage key webui/session_watch.py keeps the draft in


def session_ends_then_send(chat: ChatPage, chat_app: ChatApp, idp: Idp) -> None:
    """Type, lose the session, press Send: through the login page (and the IdP's form, if it
    asks) back to the chat."""
    chat.message_box.fill(DRAFT)
    assert chat_app.services.sessions.revoke_user(chat_app.user_key(STAFF)) >= 1
    chat.page.locator("#send").click()
    login_form = chat.page.locator("input[name=login]")
    notice = chat.page.locator("#signed-in-again")
    expect(login_form.or_(notice)).to_be_visible()
    if login_form.is_visible():
        sign_in(chat.page, idp, STAFF)
    chat.expect_loaded()


def test_a_draft_survives_a_forced_sign_in_with_a_notice_why(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    for locale, words in (("en-US", "sign in again"), ("zh-CN", "重新登录")):
        page = open_browser(locale=locale)
        chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
        session_ends_then_send(chat, chat_app, idp)
        assert chat_app.active_sessions(STAFF), "signed in again"
        expect(chat.message_box).to_have_value(DRAFT)
        notice = page.locator("#signed-in-again")
        expect(notice).to_contain_text(words)
        screenshot(page, f"signed-in-again-{locale}")
        notice.get_by_role("button").click()
        expect(notice).to_have_count(0)
        chat.reload()  # kept once: a reload shows neither again
        expect(chat.message_box).to_have_value("")
        expect(page.locator("#signed-in-again")).to_have_count(0)


@pytest.mark.parametrize(
    ("who", "minutes_ago"), [("Signed in as Someone Else", 1), (None, 16)], ids=["other", "stale"]
)
def test_a_draft_kept_for_someone_else_or_too_long_ago_is_dropped(
    page: Page, idp: Idp, chat_app: ChatApp, who: str | None, minutes_ago: int
) -> None:
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    signed_in = page.locator("#user-bar").text_content()
    kept = {"draft": DRAFT, "who": who or signed_in, "at": (time.time() - minutes_ago * 60) * 1000}
    page.evaluate(f"sessionStorage.setItem({KEPT!r}, {json.dumps(json.dumps(kept))})")
    chat.reload()
    expect(page.locator("#user-bar")).to_be_visible()
    poll(page, f"sessionStorage.getItem({KEPT!r}) === null", "the draft was looked at", 10)
    expect(chat.message_box).to_have_value("")
    expect(page.locator("#signed-in-again")).to_have_count(0)
