"""Journey: the pages the server writes itself, in English and Chinese, on a desktop and a phone.

A browser set to zh-CN or en-US opens the signed-out page, is refused at sign-in (an outsider), meets
a guard's refusal (too many requests, an outage) and opens the development login page; each speaks
the browser's language, and no page asks any host but this machine for anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response
from starlette.routing import Route

from auth.embedded_idp import EmbeddedIdp
from core.store_outage import StoreUnreachable
from guards.outages import OutageMiddleware
from guards.rate_limits import Limited
from guards.refusals import refusal
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import sign_in_to_chat
from tests.e2e.harness import OUTSIDER, STAFF, Idp
from tests.e2e.idp_pages import Screenshot, sign_in
from tests.e2e.page_requests import foreign, is_loopback, record_requests
from tests.live_server import free_port, live_server

VIEWPORTS = {"desktop": {"width": 1366, "height": 800}, "phone": {"width": 390, "height": 844}}
SAYS = {
    "en-US": {
        "lang": "en",
        "signed_out": "You are signed out",
        "refused": "Sign-in refused",
        "too_many": "Too many requests",
        "outage": "Temporarily unavailable",
        "dev_login": "Development sign-in",
    },
    "zh-CN": {
        "lang": "zh-CN",
        "signed_out": "您已退出登录",
        "refused": "登录被拒绝",
        "too_many": "请求过于频繁",
        "outage": "服务暂时不可用",
        "dev_login": "开发登录",
    },
}


@pytest.fixture(scope="module")
def dev_login() -> Iterator[str]:
    """The development login (oidc-provider-mock), as `issuer = "embedded"` starts it."""
    embedded = EmbeddedIdp(port=free_port())
    issuer = embedded.start()
    yield issuer
    embedded.stop()


@pytest.fixture(scope="module")
def guarded() -> Iterator[str]:
    """A tiny app behind the real refusals: a rate limit's 429 and a database outage's 503."""

    async def too_many(request: StarletteRequest) -> Response:
        return refusal(request.scope, 429, Limited("chat_per_minute", 30).message)

    async def outage(request: StarletteRequest) -> Response:
        raise StoreUnreachable("database")

    app = Starlette(
        routes=[Route("/too-many", too_many), Route("/outage", outage)],
        middleware=[Middleware(OutageMiddleware)],
    )
    with live_server(app) as base:
        yield base


def authorize_url(issuer: str, chat_url: str) -> str:
    query = {
        "response_type": "code",
        "client_id": "company-chat",
        "redirect_uri": chat_url + "/auth/callback",
        "scope": "openid email profile",
        "state": "journey",
        "nonce": "journey",
    }
    return f"{issuer}/oauth2/authorize?{urlencode(query)}"


@pytest.mark.parametrize("screen", sorted(VIEWPORTS))
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_server_pages_speak_the_browser_language_and_load_only_from_this_machine(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    dev_login: str,
    guarded: str,
    screenshot: Screenshot,
    locale: str,
    screen: str,
) -> None:
    says = SAYS[locale]
    page = open_browser(locale=locale, viewport=VIEWPORTS[screen])
    requested = record_requests(page)

    def shows(heading: str, name: str) -> None:
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.locator("html")).to_have_attribute("lang", says["lang"])
        expect(page).to_have_title(heading)
        screenshot(page, f"{name}-{locale}-{screen}")

    page.goto(chat_app.url + chat_app.settings.oidc.post_logout_path)
    shows(says["signed_out"], "signed-out")

    page.goto(chat_app.url + "/")
    sign_in(page, idp, OUTSIDER)
    shows(says["refused"], "sign-in-refused")
    expect(page.get_by_role("link")).to_have_attribute("href", chat_app.url + "/login")

    page.goto(guarded + "/too-many")
    shows(says["too_many"], "too-many-requests")
    expect(page.locator("body")).to_contain_text("30")
    page.goto(guarded + "/outage")
    shows(says["outage"], "outage")

    page.goto(authorize_url(dev_login, chat_app.url))
    shows(says["dev_login"], "dev-login")
    # Styled by its own inline CSS: the demo users' buttons are filled, not browser-default grey.
    button = page.get_by_role("button", name="Alice (staff)")
    colour = button.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(37, 99, 235)", colour

    assert requested and foreign(requested) == []


def test_the_check_sees_a_request_to_another_host() -> None:
    assert not is_loopback("https://cdn.jsdelivr.net/npm/@picocss/pico@2/css/pico.min.css")
    assert is_loopback("http://127.0.0.1:8000/login") and is_loopback("http://[::1]:9/")


def test_an_english_browser_gets_the_english_title_and_no_api_footer(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    requested = record_requests(page)
    sign_in_to_chat(page, idp, chat_app.url, STAFF)
    expect(page).to_have_title("Company Chat")
    expect(page.locator("footer")).to_have_count(0)
    screenshot(page, "chat-en-US-desktop")
    assert foreign(requested) == []
