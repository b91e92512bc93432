"""The harness on its own: a real browser signs in through the real IdP to a tiny relying party, and out.

No chat app here; this proves the IdP, the browser and the loopback servers work together, so a failing
journey later points at the app rather than at the harness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page, expect

from tests.e2e.harness import ADMIN, OUTSIDER, STAFF, Idp, IdpAccount, serve_in_thread
from tests.e2e.idp_pages import Screenshot, confirm_sign_out, expect_login_form, sign_in
from tests.e2e.relying_party import RpRecord, create_relying_party

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def rp(idp: Idp, app_port: int) -> Iterator[tuple[str, RpRecord]]:
    """The tiny relying party, served on the port the IdP's client redirects to."""
    app, record = create_relying_party(idp)
    with serve_in_thread(app, app_port) as base_url:
        yield base_url, record


def callback_json(page: Page, idp: Idp) -> dict[str, object]:
    """The relying party's callback answer, once the browser has landed on it."""
    page.wait_for_url(idp.client.redirect_uri + "?*")
    return json.loads(page.locator("body").inner_text())


@pytest.mark.parametrize("account", [STAFF, ADMIN, OUTSIDER], ids=lambda a: a.login)
def test_login_through_idp_yields_groups_in_id_token(
    page: Page, idp: Idp, rp: tuple[str, RpRecord], account: IdpAccount
) -> None:
    base_url, record = rp
    page.goto(base_url + "/login")
    sign_in(page, idp, account)

    assert callback_json(page, idp) == {"sub": account.login, "groups": list(account.groups)}
    (claims,) = record.logins
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == idp.client.client_id
    assert claims["email"] == f"{account.login}@example.test"
    assert claims["name"]


def test_rp_initiated_logout_ends_idp_session(
    page: Page, idp: Idp, rp: tuple[str, RpRecord], screenshot: Screenshot
) -> None:
    base_url, record = rp
    page.goto(base_url + "/login")
    sign_in(page, idp, STAFF, screenshot)
    assert callback_json(page, idp)["groups"] == ["staff"]

    # While the IdP session lives, a new login goes straight through without the form.
    page.goto(base_url + "/login")
    assert callback_json(page, idp)["sub"] == "alice"
    assert len(record.logins) == 2

    page.goto(base_url + "/logout")
    confirm_sign_out(page, screenshot)
    page.wait_for_url(idp.client.post_logout_redirect_uri + "?state=*")
    expect(page.locator("body")).to_have_text("signed out")

    # The IdP told the RP over the back channel, with a token it signed for this client.
    (logout_token,) = record.logout_tokens
    jwks = KeySet.import_key_set(httpx.get(idp.issuer + "/jwks").json())
    claims = jwt.decode(logout_token, jwks).claims
    assert (claims["iss"], claims["aud"], claims["sub"]) == (
        idp.issuer,
        idp.client.client_id,
        "alice",
    )
    assert BACKCHANNEL_EVENT in claims["events"]
    assert claims["sid"]

    # The IdP session is gone: logging in again asks for credentials.
    page.goto(base_url + "/login")
    expect_login_form(page, idp)
    screenshot(page, "idp-login-after-logout")


def test_idp_refuses_authorization_without_pkce(idp: Idp) -> None:
    response = httpx.get(
        idp.issuer + "/auth",
        params={
            "client_id": idp.client.client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": idp.client.redirect_uri,
            "state": "s",
            "nonce": "n",
        },
    )
    # The error goes back to the client's redirect_uri, never to a login page.
    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(idp.client.redirect_uri)
    assert location.params["error"] == "invalid_request"
    assert "PKCE" in location.params["error_description"]
