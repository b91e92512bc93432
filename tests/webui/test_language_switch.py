"""The language switch's route, the page's language script, and sign-in bringing a saved choice back,
against the whole app (real gate, origin check, embedded IdP, SQLite store)."""

from __future__ import annotations

import re

import httpx
import pytest

from app_factory import language_cookie
from config import Settings
from core.locale import LanguageCookie
from tests.page_language import english_phrases, html_lang

BROWSER = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
EN_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}


@pytest.fixture
def signed_in(chat_server):
    chat = chat_server()
    alice = chat.login("alice")
    yield chat, alice
    alice.close()


def choose(client: httpx.Client, body: object, **headers: str) -> httpx.Response:
    return client.post("/language", json=body, headers=headers)


def test_choosing_saves_the_choice_and_sets_the_cookie(signed_in):
    chat, alice = signed_in
    chosen = choose(alice, {"locale": "zh-CN"})
    assert chosen.status_code == 204
    cookie = chosen.headers["set-cookie"]
    assert cookie.startswith("lang=zh-CN;") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http: the session is not Secure
    assert chat.services.preferences.language(chat.key("alice")) == "zh-CN"
    assert chat.services.preferences.language(chat.key("bob")) is None


@pytest.mark.parametrize(
    "body",
    [
        {"locale": "fr"},
        {"locale": "zh-CN\r\nSet-Cookie: session=x"},
        {"locale": ["zh-CN"]},
        {"locale": None},
        {"lang": "zh-CN"},
        ["zh-CN"],
        "zh-CN",
        {"locale": "x" * 300},
    ],
)
def test_anything_but_a_supported_locale_is_refused_with_a_clear_message(signed_in, body):
    chat, alice = signed_in
    refused = choose(alice, body)
    assert refused.status_code == 400
    assert "en, zh-CN" in refused.json()["error"]
    assert "set-cookie" not in refused.headers
    assert chat.services.preferences.language(chat.key("alice")) is None


def test_a_form_post_is_refused(signed_in):
    _, alice = signed_in
    refused = alice.post("/language", data={"locale": "zh-CN"})
    assert refused.status_code == 415 and "set-cookie" not in refused.headers


def test_a_foreign_page_cannot_choose_for_you(signed_in):
    chat, alice = signed_in
    refused = choose(alice, {"locale": "zh-CN"}, Origin="https://evil.example")
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert chat.services.preferences.language(chat.key("alice")) is None


def test_signed_out_nobody_can_choose(signed_in):
    chat, _ = signed_in
    refused = httpx.post(chat.url + "/language", json={"locale": "zh-CN"}, timeout=10)
    assert refused.status_code == 401 and "set-cookie" not in refused.headers


def test_the_page_loads_the_language_script_before_gradio(signed_in):
    chat, alice = signed_in
    page = alice.get("/", headers=BROWSER)
    tag = re.search(
        rf'<script nonce="[^"]+" src="{re.escape(chat.url)}/page-language.js">', page.text
    )
    gradio = page.text.index('type="module"')
    assert tag is not None and tag.start() < gradio
    assert page.text.count("/page-language.js") == 1
    assert int(page.headers["content-length"]) == len(page.content)
    assert "/page-language.js" not in alice.get("/config").text  # not a Gradio head script


def test_the_language_script_says_the_page_language(signed_in):
    _, alice = signed_in
    english = alice.get("/page-language.js", headers=EN_BROWSER)
    assert english.headers["content-type"].startswith("text/javascript")
    assert 'const locale = "en";' in english.text
    assert "Cookie" in english.headers["vary"] and english.headers["cache-control"] == "no-cache"
    choose(alice, {"locale": "zh-CN"})
    chinese = alice.get("/page-language.js", headers=EN_BROWSER)
    assert 'const locale = "zh-CN";' in chinese.text and '"语言"' in chinese.text
    assert '"公司智能助手"' in alice.get("/page-title.js", headers=EN_BROWSER).text


def test_server_written_pages_follow_the_choice(signed_in):
    chat, alice = signed_in
    choose(alice, {"locale": "zh-CN"})
    signout = alice.get("/signout", headers=EN_BROWSER)
    assert html_lang(signout.text) == "zh-CN" and english_phrases(signout.text) == []
    alice.cookies.delete(chat.settings.session.cookie_name)  # no user: only the cookie is left
    assert list(alice.cookies) == ["lang"]
    logged_out = alice.get(chat.settings.oidc.post_logout_path, headers=EN_BROWSER)
    assert html_lang(logged_out.text) == "zh-CN"
    dev_login = alice.get("/login", headers=EN_BROWSER, follow_redirects=True)
    assert "开发登录" in dev_login.text and english_phrases(dev_login.text) == []
    refused = alice.post(dev_login.url, data={"sub": "outsider"}, follow_redirects=True)
    assert refused.status_code == 403
    assert html_lang(refused.text) == "zh-CN" and english_phrases(refused.text) == []


def test_signing_in_brings_back_the_saved_choice_and_clears_someone_elses(signed_in):
    chat, _ = signed_in
    chat.services.preferences.set_language(chat.key("alice"), "zh-CN")
    elsewhere = chat.login("alice")  # a new browser: no language cookie yet
    try:
        assert elsewhere.cookies.get("lang") == "zh-CN"
        page_script = elsewhere.get("/page-language.js", headers=EN_BROWSER)
        assert 'const locale = "zh-CN";' in page_script.text
        # Bob, with no choice of his own, signs in on that same browser: his browser's language.
        landed = elsewhere.get("/login", follow_redirects=True)
        bob = elsewhere.post(landed.url, data={"sub": "bob"}, follow_redirects=True)
        assert bob.status_code == 200 and "gradio_config" in bob.text
        assert elsewhere.cookies.get("lang") is None
    finally:
        elsewhere.close()


def test_behind_https_and_a_root_path_the_cookie_is_secure_and_scoped_like_the_session():
    deployed = Settings(server={"public_url": "https://chat.example.com", "root_path": "/chat"})
    assert language_cookie(deployed) == LanguageCookie(path="/chat", secure=True)
    assert language_cookie(Settings()) == LanguageCookie(path="/", secure=False)
