"""The chat page's chrome as a zh-CN browser gets it: every label by translation key, the tab's title in
Chinese, no footer pointing at Gradio's generated API page; and every English string has its twin."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.page_language import english_phrases, html_lang
from webui.i18n import EN, ZH

ZH_BROWSER = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN_BROWSER = {"Accept-Language": "en-US,en;q=0.9"}


def strings_in(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with where it is."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from strings_in(inner, f"{path}/{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from strings_in(inner, f"{path}/{index}")
    elif isinstance(value, str):
        yield path, value


def test_every_english_string_has_a_chinese_twin_with_the_same_placeholders():
    assert set(ZH) == set(EN)
    for key, english in EN.items():
        assert set(re.findall(r"\{(\w+)\}", ZH[key])) == set(re.findall(r"\{(\w+)\}", english)), key


@pytest.fixture
def page_for(chat_server):
    chat = chat_server()
    client = chat.login("alice")
    yield chat, client
    client.close()


def test_the_chinese_page_config_names_labels_by_key_and_has_no_footer(page_for):
    _, client = page_for
    config = client.get("/config", headers=ZH_BROWSER).json()
    english = set(EN.values())
    shown_in_english = [
        (where, said)
        for where, said in strings_in(config["components"])
        if said in english or english_phrases(said)
    ]
    assert shown_in_english == []
    translations = config["i18n_translations"]
    assert set(translations["zh-CN"]) >= set(translations["en"])
    # Gradio's generated API page shows calls without the Authorization header and an MCP tab.
    assert config["footer_links"] == []
    assert "/page-title.js" in config["head"]


def test_the_tab_title_follows_the_browser_language(page_for):
    _, client = page_for
    zh = client.get("/page-title.js", headers=ZH_BROWSER)
    en = client.get("/page-title.js", headers=EN_BROWSER)
    assert zh.headers["content-type"].startswith("text/javascript")
    assert '"公司智能助手"' in zh.text and "Company Chat" not in zh.text
    assert '"Company Chat"' in en.text
    assert "Accept-Language" in zh.headers["vary"]  # a cache keeps one per language


def test_a_title_the_operator_chose_is_kept_in_every_language(chat_server):
    chat = chat_server(ui={"title": "Acme Helpdesk Chat"})
    client = chat.login("alice")
    assert '"Acme Helpdesk Chat"' in client.get("/page-title.js", headers=ZH_BROWSER).text
    client.close()


def test_the_signout_page_in_chinese(page_for):
    _, client = page_for
    page = client.get("/signout", headers=ZH_BROWSER)
    assert html_lang(page.text) == "zh-CN"
    assert "要退出公司智能助手吗？" in page.text and "退出登录" in page.text
    assert english_phrases(page.text) == []
