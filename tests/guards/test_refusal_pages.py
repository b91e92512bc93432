"""A refusal seen in a browser: the page says what happened and what to do in the browser's language;
scripts keep the English JSON they may match on."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.audit import MemoryAuditSink
from core.shared_state import SharedStateUnavailable
from core.store_outage import StoreUnreachable
from guards.client_ip import ClientAddressMiddleware
from guards.ip_allowlist import AccessRules, IPAllowlistMiddleware
from guards.outages import DATABASE_DOWN, SHARED_STATE_DOWN, OutageMiddleware
from guards.rate_limits import _MESSAGES, Limited
from guards.refusal_text import REFUSAL_TEXT, TITLES
from guards.refusals import refusal_page
from guards.settings import AccessSettings
from tests.page_language import english_phrases, html_lang

BROWSER = {"Accept": "text/html,application/xhtml+xml"}
ZH = {**BROWSER, "Accept-Language": "zh-CN,zh;q=0.9"}
EN = {**BROWSER, "Accept-Language": "en-GB,en;q=0.9"}


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def outsider_client() -> TestClient:
    app = Starlette(
        routes=[Route("/", ok)],
        middleware=[
            Middleware(ClientAddressMiddleware, trusted_proxies=()),
            Middleware(
                IPAllowlistMiddleware,
                rules=AccessRules.from_settings(AccessSettings()),
                audit=MemoryAuditSink(),
            ),
        ],
    )
    return TestClient(app, client=("203.0.113.5", 40000))


def test_an_address_outside_the_allowlist_reads_why_in_chinese():
    page = outsider_client().get("/", headers=ZH)
    assert page.status_code == 403
    assert html_lang(page.text) == "zh-CN"
    assert "<title>访问被拒绝</title>" in page.text and "公司网络或 VPN" in page.text
    assert english_phrases(page.text) == []
    assert page.headers["vary"] == "Accept-Language"


def test_the_same_refusal_in_english_and_as_json_for_scripts():
    client = outsider_client()
    english = client.get("/", headers=EN)
    assert html_lang(english.text) == "en" and "Access refused" in english.text
    assert "company network or VPN" in english.text
    script = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert script.headers["content-type"] == "application/json"
    assert "company network or VPN" in script.json()["detail"]


@pytest.mark.parametrize("down", [StoreUnreachable("db"), SharedStateUnavailable("redis")])
def test_an_outage_page_in_chinese(down):
    async def failing(request: Request) -> PlainTextResponse:
        raise down

    app = Starlette(routes=[Route("/", failing)], middleware=[Middleware(OutageMiddleware)])
    page = TestClient(app).get("/", headers=ZH)
    assert page.status_code == 503 and page.headers["retry-after"]
    assert "<title>服务暂时不可用</title>" in page.text
    assert english_phrases(page.text) == []


def test_every_sentence_the_guards_write_has_a_chinese_twin():
    written = [DATABASE_DOWN, SHARED_STATE_DOWN, *TITLES.values()]
    written += [Limited(limit, 17).message for limit in _MESSAGES]
    assert REFUSAL_TEXT.untranslated(written) == []
    for limit in _MESSAGES:
        page = refusal_page("zh-CN", 429, Limited(limit, 17).message)
        assert "17" in page and english_phrases(page) == [], limit


def test_an_untranslated_sentence_stays_readable_and_the_check_sees_it():
    page = refusal_page("zh-CN", 403, "Something nobody translated yet.")
    assert "Something nobody translated yet." in page
    assert english_phrases(page) == ["Something nobody translated yet"]
