"""The page language rule with the language cookie: a valid cookie wins over Accept-Language, anything
else in it is ignored, and only our own fixed values are ever written back."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from core.locale import LanguageCookie, locale_of, request_locale, resolve_locale

ZH_BROWSER = "zh-CN,zh;q=0.9"
EN_BROWSER = "en-US,en;q=0.9"


@pytest.mark.parametrize(
    ("cookie", "accept_language", "locale"),
    [
        ("zh-CN", EN_BROWSER, "zh-CN"),  # the person's choice beats the browser
        ("en", ZH_BROWSER, "en"),
        (None, ZH_BROWSER, "zh-CN"),  # no choice: the browser's language
        (None, EN_BROWSER, "en"),
        (None, None, "en"),
    ],
)
def test_a_valid_cookie_wins_else_the_browser_language(cookie, accept_language, locale):
    assert resolve_locale(cookie, accept_language) == locale


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "fr",
        "zh",  # close is not enough: only the exact values we write
        "ZH-CN",
        "zh-TW",
        " zh-CN",
        "zh-CN\r\nSet-Cookie: session=stolen",
        "zh-CN; Path=/; Domain=evil.example",
        '"zh-CN"',
        "zh-CN" * 10_000,
        "<script>alert(1)</script>",
        "\x00",
    ],
)
def test_any_other_cookie_value_is_ignored(junk):
    assert resolve_locale(junk, ZH_BROWSER) == "zh-CN"
    assert resolve_locale(junk, EN_BROWSER) == "en"


def app_saying_its_locale() -> Starlette:
    async def which(request: Request) -> Response:
        return PlainTextResponse(f"{locale_of(request.scope)}|{request_locale(request)}")

    return Starlette(routes=[Route("/", which)])


@pytest.mark.parametrize(
    ("cookie_header", "locale"),
    [
        ("lang=zh-CN", "zh-CN"),
        ("session=abc; lang=zh-CN; other=1", "zh-CN"),
        ("lang=klingon", "en"),
        ("lang=" + "x" * 4000, "en"),
        ("lang", "en"),  # no value at all
        ("=zh-CN; ;;; lang=en", "en"),
        ("lang=zh-CN%0d%0aX-Injected: 1", "en"),
    ],
)
def test_requests_read_the_cookie_the_same_way_from_a_scope_and_a_request(cookie_header, locale):
    client = TestClient(app_saying_its_locale())
    answer = client.get("/", headers={"Cookie": cookie_header, "Accept-Language": EN_BROWSER})
    assert answer.text == f"{locale}|{locale}"


def test_a_request_without_headers_is_english():
    class Unpickled:  # a gr.Request whose request is gone and nothing was kept
        pass

    assert request_locale(Unpickled()) == "en"
    assert request_locale(type("Kept", (), {"headers": {"cookie": "lang=zh-CN"}})()) == "zh-CN"


def set_cookie_header(cookie: LanguageCookie, locale: str) -> str:
    response = Response()
    cookie.set(response, locale)
    (header,) = [v.decode() for k, v in response.raw_headers if k == b"set-cookie"]
    return header


def test_the_cookie_is_lax_httponly_scoped_to_the_root_path_and_secure_over_https():
    plain = set_cookie_header(LanguageCookie(path="/", secure=False), "zh-CN")
    assert plain.startswith("lang=zh-CN;")
    assert "HttpOnly" in plain and "SameSite=lax" in plain and "Path=/" in plain
    assert "Secure" not in plain
    behind = set_cookie_header(LanguageCookie(path="/chat", secure=True), "en")
    assert "Path=/chat" in behind and "Secure" in behind


@pytest.mark.parametrize("bad", ["fr", "zh-CN\r\nSet-Cookie: x=1", "zh-CN; Domain=evil.example"])
def test_only_a_supported_locale_is_ever_written(bad):
    with pytest.raises(ValueError):
        set_cookie_header(LanguageCookie(), bad)


def test_clearing_expires_the_cookie_on_the_same_path():
    response = Response()
    LanguageCookie(path="/chat").clear(response)
    header = response.headers["set-cookie"]
    assert header.startswith("lang=") and "Max-Age=0" in header and "Path=/chat" in header
