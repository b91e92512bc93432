"""The login flow's own pages (signed out, sign-in refused, unavailable) and the development login page
speak the browser's language: every sentence in Chinese for a zh-CN browser, nothing loaded from
another host."""

from __future__ import annotations

import re

import httpx
import pytest

from auth.auth_pages import PageText
from auth.embedded_idp import EmbeddedIdp
from auth.login_policy import LoginRefusal, evaluate_login
from auth.login_routes import _PROTOCOL_MESSAGES
from auth.page_text import AUTH_TEXT
from auth.settings import OidcSettings
from tests.auth.test_embedded_login import POLICY, embedded_login
from tests.page_language import english_phrases, html_lang

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-US,en;q=0.9"}


def test_signed_out_page_in_chinese_and_in_english(chat_app):
    chat = chat_app()
    path = chat.settings.oidc.post_logout_path
    with chat.client() as client:
        zh = client.get(path, headers=ZH)
        en = client.get(path, headers=EN)
    assert zh.status_code == en.status_code == 200
    assert html_lang(zh.text) == "zh-CN" and html_lang(en.text) == "en"
    assert "<title>您已退出登录</title>" in zh.text and "重新登录" in zh.text
    assert english_phrases(zh.text) == []
    assert "You are signed out" in en.text and "Sign in again" in en.text
    assert zh.headers["vary"] == "Accept-Language"
    assert zh.headers["content-length"] == str(len(zh.content))


def test_refused_sign_in_in_chinese_still_clears_the_login_state(chat_app):
    chat = chat_app()
    with chat.client() as client:
        client.get("/login")  # a login state cookie for this browser
        refused = client.get("/auth/callback", params={"state": "x"}, headers=ZH)
    assert refused.status_code == 400
    assert html_lang(refused.text) == "zh-CN"
    assert "登录被拒绝" in refused.text and "此登录响应不属于当前浏览器" in refused.text
    assert english_phrases(refused.text) == []
    assert chat.auth.sessions.cookie.login_name in refused.headers["set-cookie"]


def test_the_reference_people_quote_to_support_is_translated_and_escaped():
    text = PageText("Sign-in refused", "Try again", reference="req-1<b>")
    assert "参考编号：req-1&lt;b&gt;" in text.render("zh-CN")
    assert "Reference: req-1&lt;b&gt;" in text.render("en")


def test_unavailable_sign_in_in_chinese(chat_app):
    chat = chat_app()
    with chat.client() as client:
        client.get("/healthz")  # started
        chat.auth.login.provider = None
        unavailable = client.get("/login", headers=ZH)
    assert unavailable.status_code == 503
    assert "暂时无法登录" in unavailable.text
    assert english_phrases(unavailable.text) == []


def test_outsider_is_refused_in_chinese_through_the_real_provider(chat_app):
    embedded = chat_app(issuer="embedded", oidc=POLICY)
    with embedded.client(headers=ZH) as client:
        refused = embedded_login(client, "outsider")
    assert refused.status_code == 403
    assert "您的账号不在允许使用此聊天服务的用户组中" in refused.text
    assert english_phrases(refused.text) == []


def test_every_sentence_the_login_flow_writes_has_a_chinese_twin():
    policy = OidcSettings(
        issuer="https://idp.test",
        client_secret="x" * 32,
        allowed_groups=["staff"],
        allowed_email_domains=["corp.example"],
    )
    refusals = [
        evaluate_login("https://idp.test", claims, policy)
        for claims in (
            {},
            {"sub": "a", "groups": ["other"]},
            {"sub": "a", "groups": ["staff"], "email": "a@elsewhere.example"},
        )
    ]
    assert all(isinstance(r, LoginRefusal) for r in refusals)
    written = [r.message for r in refusals if isinstance(r, LoginRefusal)]
    written += list(_PROTOCOL_MESSAGES.values())
    written.append(
        "The sign-in could not be verified (bad_signature). "
        "Please go back to the chat and sign in again."
    )
    assert AUTH_TEXT.untranslated(written) == []
    assert "bad_signature" in AUTH_TEXT.translate(written[-1], "zh-CN")


@pytest.mark.parametrize(("headers", "lang"), [(ZH, "zh-CN"), (EN, "en")])
def test_development_login_page_is_self_contained_and_translated(chat_app, headers, lang):
    embedded = chat_app(issuer="embedded", oidc=POLICY)
    with embedded.client(headers=headers) as client:
        page = client.get("/login", follow_redirects=True)
    assert page.status_code == 200
    assert html_lang(page.text) == lang
    # Nothing on the page fetches from anywhere: no stylesheet or script links, styles inline.
    assert re.findall(r"<(?:link|script|img|iframe)\b", page.text, re.IGNORECASE) == []
    assert "@import" not in page.text and "<style>" in page.text
    assert "Alice (staff)" in page.text  # demo users by name
    if lang == "zh-CN":
        assert "开发登录" in page.text and "授权" in page.text
        assert english_phrases(page.text) == []
    else:
        assert "Development sign-in" in page.text and "Authorize" in page.text


def test_development_login_in_chinese_still_signs_in(chat_app):
    embedded = chat_app(issuer="embedded", oidc=POLICY)
    with embedded.client(headers=ZH) as client:
        landed = embedded_login(client, "alice", next_path="/whoami")
    assert landed.status_code == 200 and landed.json()["key"].endswith("|alice")


@pytest.fixture(scope="module")
def dev_login_issuer():
    embedded = EmbeddedIdp()
    yield embedded.start()
    embedded.stop()


@pytest.mark.parametrize(
    ("path", "params", "chinese"),
    [
        (
            "/oauth2/end_session",
            {"post_logout_redirect_uri": "http://127.0.0.1:1/"},
            "退出开发登录",
        ),
        ("/oauth2/authorize", {}, "错误："),  # the library's error page, ours around it
        ("/", {}, "开发登录"),
    ],
)
def test_every_development_login_page_is_ours(dev_login_issuer, path, params, chinese):
    page = httpx.get(dev_login_issuer + path, params=params, headers=ZH, timeout=10)
    assert chinese in page.text and html_lang(page.text) == "zh-CN"
    assert re.findall(r"<(?:link|script|img|iframe)\b", page.text, re.IGNORECASE) == []
    assert "cdn." not in page.text and "https://" not in page.text
