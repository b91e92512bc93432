"""Journey 5: refusals. Someone the IdP knows, but outside the allowed groups, is refused with a page
that says why and what to do, and the app creates no session for them. A staff member whose message
is refused sees a notice beside the chat, never a reply in the assistant's voice."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from core.audit import LOGIN_REFUSED
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import sign_in_to_chat
from tests.e2e.harness import OUTSIDER, STAFF, Idp
from tests.e2e.idp_pages import Screenshot, sign_in


def test_outsider_sees_refusal_page_and_gets_no_session(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    started = datetime.now(UTC)  # other journeys in this app refuse the outsider too
    page.goto(chat_app.url + "/")
    with page.expect_response(lambda r: "/auth/callback?" in r.url) as callback:
        sign_in(page, idp, OUTSIDER)
    assert callback.value.status == 403

    expect(page.get_by_role("heading")).to_have_text("Sign-in refused")
    expect(page.locator("body")).to_contain_text("not in a group that may use this chat")
    expect(page.locator("body")).to_contain_text("IT service desk")
    expect(page.locator("#message")).to_have_count(0)
    screenshot(page, "outsider-refused")

    cookies = {c["name"] for c in page.context.cookies()}
    assert chat_app.settings.session.cookie_name not in cookies
    assert chat_app.active_sessions(OUTSIDER) == []
    refused = chat_app.services.audit_log.query(
        since=started, actor=chat_app.user_key(OUTSIDER), type=LOGIN_REFUSED
    )
    assert [r.outcome for r in refused.records] == ["group_not_allowed"]

    # Asking again (the IdP session still lives) is refused again, not let in.
    page.goto(chat_app.url + "/")
    expect(page.get_by_role("heading")).to_have_text("Sign-in refused")
    expect(page.locator("#message")).to_have_count(0)


def test_a_refused_message_is_a_notice_and_stays_in_the_box(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    chat.new_chat()
    limit = chat_app.settings.generation.max_prompt_chars
    too_long = "Journey five: " + "x" * limit
    notice = chat.send(too_long).wait_refused()
    assert "too long" in notice and str(limit) in notice
    screenshot(page, "message-refused")
    # The chat is as it was, and nothing the person typed is lost.
    expect(chat.user_messages).to_have_count(0)
    expect(chat.bot_messages).to_have_count(0)
    expect(chat.message_box).to_have_value(too_long)
    chat.expect_not_listed("Journey five")
