"""What a person does on the IdP's own pages (oidc-provider's dev interactions), for every journey."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.harness import Idp, IdpAccount

Screenshot = Callable[[Page, str], Path]


def sign_in(
    page: Page, idp: Idp, account: IdpAccount, screenshot: Screenshot | None = None
) -> None:
    """On the IdP's login form, sign in as `account` (any password works), then approve consent."""
    expect_login_form(page, idp)
    if screenshot:
        screenshot(page, "idp-login")
    page.locator("input[name=login]").fill(account.login)
    page.locator("input[name=password]").fill("any password at all")
    page.get_by_role("button", name="Sign-in").click()
    consent = page.get_by_role("button", name="Continue")
    expect(consent).to_be_visible()
    if screenshot:
        screenshot(page, "idp-consent")
    consent.click()


def confirm_sign_out(page: Page, screenshot: Screenshot | None = None) -> None:
    """On the IdP's end-session page, answer "Yes, sign me out"."""
    expect(page.get_by_text("Do you want to sign-out")).to_be_visible()
    if screenshot:
        screenshot(page, "idp-logout-confirm")
    page.get_by_role("button", name="Yes, sign me out").click()


def expect_login_form(page: Page, idp: Idp) -> None:
    """Assert the browser is on the IdP's login form, i.e. the IdP asks for credentials."""
    expect(page).to_have_url(re.compile(re.escape(f"{idp.issuer}/interaction/") + r"[\w-]+$"))
    expect(page.locator("input[name=login]")).to_be_visible()
