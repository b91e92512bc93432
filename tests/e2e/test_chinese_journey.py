"""Journey 7: with a zh-CN browser the page speaks Chinese, and a Chinese conversation is sent,
streamed, saved and found again in the history."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot
from tests.e2e.page_requests import foreign, record_requests

QUESTION = "你好！请用三句话介绍一下北京的历史。"


def test_chinese_browser_gets_chinese_page_and_conversation_round_trips(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    page = open_browser(locale="zh-CN")
    requested = record_requests(page)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    expect(page).to_have_title("公司智能助手")
    # No footer: Gradio's generated API page would show calls without the token they need.
    expect(page.locator("footer")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("API"))).to_have_count(0)
    expect(page.locator("#send")).to_have_text("发送")
    expect(page.locator("#stop")).to_have_text("停止")
    expect(page.locator("#new-chat")).to_have_text("新对话")
    expect(chat.tab("对话")).to_be_visible()
    expect(page.locator("#user-bar")).to_contain_text("当前用户")
    expect(page.locator("#user-bar").get_by_role("link", name="退出登录")).to_be_visible()
    expect(page.locator("#message textarea")).to_have_attribute(
        "placeholder", "输入消息后按回车发送"
    )
    screenshot(page, "chat-zh-CN")

    chat.send(QUESTION).wait_done()
    expect(chat.user_messages.last).to_have_text(QUESTION)
    chat.expect_listed(QUESTION)
    screenshot(page, "chat-zh-CN-reply")

    key = chat_app.user_key(STAFF)
    (found,) = chat_app.services.history.list_conversations(key, search="北京的历史")
    assert found.title == QUESTION
    saved = chat_app.services.history.get_conversation(key, found.id).messages
    assert saved[0].content == QUESTION

    chat.reload()
    chat.open_conversation(QUESTION, turns=1)
    expect(chat.user_messages.first).to_have_text(QUESTION)
    expect(page).to_have_title("公司智能助手")  # after a reload too

    assert foreign(requested) == []
