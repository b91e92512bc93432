"""Journey 2: logging out ends the app session and the IdP session; neither Back nor a copied
cookie gets the person back into the chat."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from playwright.sync_api import Page, expect

from core.audit import SESSION_REVOKED
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot, confirm_sign_out, expect_login_form

MAX_BACK_STEPS = 4


def open_logout(page: Page) -> Page:
    """Click "Log out" in the user bar: the sign-out confirmation opens in the same tab."""
    page.locator("#logout").click()
    return page


def expect_not_in_chat(page: Page, app: ChatApp) -> None:
    expect(page.locator("#message")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Signed in as")
    assert page.url != app.url + "/", page.url


def test_logout_ends_both_sessions_and_back_or_replayed_cookie_do_not_get_back_in(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    started = datetime.now(UTC)
    sign_in_to_chat(page, idp, chat_app.url, STAFF)
    cookie_name = chat_app.settings.session.cookie_name
    (copied,) = [c for c in page.context.cookies() if c["name"] == cookie_name]

    signout = open_logout(page)
    expect(signout).to_have_url(chat_app.url + "/signout")
    screenshot(signout, "logout-confirm")
    signout.locator("#confirm-logout").click()
    # The app sent the browser on to the IdP, which ends its own session too.
    confirm_sign_out(signout)
    expect(signout).to_have_url(chat_app.url + chat_app.settings.oidc.post_logout_path)
    expect(signout.get_by_role("heading")).to_have_text("You are signed out")
    screenshot(signout, "logged-out")
    assert cookie_name not in {c["name"] for c in page.context.cookies()}
    # The IdP also told the app over the back channel (signed logout token, verified and audited).
    told = chat_app.services.audit_log.query(
        since=started, actor=chat_app.user_key(STAFF), type=SESSION_REVOKED
    )
    assert "backchannel_logout" in [r.outcome for r in told.records]

    # Back, step by step, never shows the chat again.
    for _ in range(MAX_BACK_STEPS):
        if signout.go_back() is None:
            break
        expect_not_in_chat(signout, chat_app)

    # Opening the chat again asks the IdP for credentials: both sessions are over.
    page.goto(chat_app.url + "/")
    expect_login_form(page, idp)
    screenshot(page, "login-after-logout")

    # A copy of the old cookie is refused: scripts get 401, a browser is sent to sign in.
    replayed = httpx.get(
        chat_app.url + "/config", cookies={cookie_name: copied["value"]}, timeout=10
    )
    assert replayed.status_code == 401, replayed.text[:200]
    page.context.add_cookies([copied])
    page.goto(chat_app.url + "/")
    expect_login_form(page, idp)
