"""Journey: the chat tab's own controls, in English and in Chinese, at desktop and phone sizes.

Send is greyed out and Stop shown only while a reply runs; a reply waiting for the engine says where
it stands in line, then that it is being written; on a phone the chat and the message box come first
and the history is a drawer behind a switch; a stopped reply is followed by our notice
in a box of its own (never inside the reply), live and when reopened; the chat window's Clear starts
a new conversation; titles are the first message without its Markdown, listed under the day; the
search filters as the person types and says so when nothing matches.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from model.fake_engine import FakeEngine
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_messages import NOTICES, REPLIES
from tests.e2e.chat_pages import (
    DESKTOP,
    PHONE,
    ChatPage,
    expect_idle,
    expect_running,
    settled_text,
    sign_in_to_chat,
)
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot
from tests.webui.line_engine import LineEngine


def stop_a_long_reply(chat: ChatPage, message: str, shot: Callable[[], object]) -> str:
    """Send `message`, watch Send and Stop while it streams, press Stop; the reply's text."""
    reply = chat.send(message)
    reply.wait_started(min_chars=20)
    expect_running(chat.page)
    shot()
    chat.stop()
    reply.wait_done()
    expect_idle(chat.page)
    return settled_text(chat.page.locator(REPLIES).last)


def search(chat: ChatPage, words: str) -> None:
    """Type into the history search, as a person does: key by key, no Enter."""
    box = chat.page.locator("#history-search textarea, #history-search input")
    box.fill("")
    box.press_sequentially(words, delay=20)


def open_listed(chat: ChatPage, title: str) -> None:
    chat.conversations.filter(has_text=title).click()
    expect(chat.page.locator("#history-title textarea, #history-title input")).to_have_value(title)


def shots(page: Page, screenshot: Screenshot, name: str) -> None:
    """The page at desktop size, then at phone size, then back."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # the layout settles
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(DESKTOP)


def test_send_stop_notice_clear_titles_and_search_in_english(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    marker = uuid.uuid4().hex[:8]
    page = open_browser(locale="en-US", viewport=DESKTOP)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    chat.new_chat()
    expect_idle(page)

    # A message in Markdown: while it is answered Send is greyed out and Stop shown; after, back.
    first = f"## Plan **{marker}** for the `Q3` review\n\n- budget\n- hiring"
    title = f"Plan {marker} for the Q3 review budget hiring"
    reply = chat.send(first)
    reply.wait_started()
    expect_running(page)
    reply.wait_done()
    expect_idle(page)
    expect(page.locator("#history-today")).to_contain_text(title)
    expect(page.locator("#history-today")).to_contain_text("Today")

    # Stopped: the partial reply, then our notice in a box of its own, not in the reply.
    partial = stop_a_long_reply(
        chat,
        f"Tell me a long story about {marker}",
        lambda: screenshot(page, "chat-tab-en-running-desktop"),
    )
    expect(page.locator(NOTICES).last).to_have_text("Reply stopped.")
    assert "stopped" not in partial.lower(), partial
    expect(page.locator(REPLIES)).to_have_count(2)
    shots(page, screenshot, "chat-tab-en-stopped")

    # Clear in the chat window, while a reply runs, starts a new conversation: that reply stops
    # (saved as stopped, in the old conversation), and the next message goes into a new one.
    owner = chat_app.user_key(STAFF)
    history = chat_app.services.history
    reply = chat.send(f"Another long story about {marker}")
    reply.wait_started(min_chars=20)
    page.locator("#chatbot").get_by_role("button", name="Clear").click()
    expect(chat.bot_messages).to_have_count(0)
    expect_idle(page)
    [old] = [c for c in history.list_conversations(owner, search=marker) if c.title == title]
    poll_saved = time.monotonic() + 20
    while history.get_conversation(owner, old.id).messages[-1].status == "streaming":
        assert time.monotonic() < poll_saved, "the reply running at Clear was not stopped"
        time.sleep(0.1)
    after_clear = f"After clearing {marker}"
    chat.send(after_clear).wait_done()
    expect(chat.user_messages).to_have_count(1)
    expect(page.locator(NOTICES)).to_have_count(0)
    chat.expect_listed(title)
    chat.expect_listed(after_clear)
    mine = {c.title: c for c in history.list_conversations(owner, search=marker)}
    assert set(mine) == {title, after_clear}, list(mine)
    kept = history.get_conversation(owner, mine[title].id).messages
    assert [(m.role, m.status) for m in kept] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "stopped"),
        ("user", "complete"),
        ("assistant", "stopped"),
    ]
    assert [m.content for m in history.get_conversation(owner, mine[after_clear].id).messages][
        :1
    ] == [after_clear]

    # Search as you type: the list narrows without Enter, and says when nothing matches.
    search(chat, marker)
    expect(chat.conversations).to_have_count(2)
    search(chat, f"no such words {marker}")
    expect(chat.conversations).to_have_count(0)
    expect(page.locator("#history-empty")).to_have_text(
        f"No conversations match “no such words {marker}”."
    )
    shots(page, screenshot, "chat-tab-en-no-match")
    search(chat, marker)
    expect(page.locator("#history-empty")).to_be_hidden()

    # Reopened after a reload, the stopped reply still has its notice apart.
    chat.reload()
    open_listed(chat, title)
    expect(chat.user_messages).to_have_count(3)
    expect(page.locator(REPLIES)).to_have_count(3)
    expect(page.locator(NOTICES)).to_have_text(["Reply stopped.", "Reply stopped."])
    expect(page.locator(REPLIES).last).not_to_contain_text("stopped")
    shots(page, screenshot, "chat-tab-en-reopened")


def test_the_chat_tab_in_chinese(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    marker = uuid.uuid4().hex[:8]
    page = open_browser(locale="zh-CN", viewport=DESKTOP)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    chat.new_chat()
    expect_idle(page)
    expect(page.locator("#send")).to_have_text("发送")

    question = f"**请**帮我写一份 {marker} 项目的周报"
    chat.send(question).wait_done()
    expect(page.locator("#history-today")).to_contain_text("今天")
    chat.expect_listed(f"请帮我写一份 {marker} 项目的周报")

    stop_a_long_reply(
        chat,
        f"请讲一个很长的故事 {marker}",
        lambda: screenshot(page, "chat-tab-zh-CN-running-desktop"),
    )
    expect(page.locator(NOTICES).last).to_have_text("回复已停止。")
    expect(page.locator("#stop")).to_be_hidden()
    shots(page, screenshot, "chat-tab-zh-CN-stopped")

    search(chat, f"没有这个 {marker}")
    expect(chat.conversations).to_have_count(0)
    expect(page.locator("#history-empty")).to_have_text(f"没有与“没有这个 {marker}”匹配的对话。")
    shots(page, screenshot, "chat-tab-zh-CN-no-match")


WAITING = {
    "en-US": ("Waiting for a free slot: yours is next, about 30 s", "Conversations"),
    "zh-CN": ("正在等待空闲位置：下一个就是您，约 30 秒", "历史对话"),
}


STOPPED = {"en-US": "Reply stopped.", "zh-CN": "回复已停止。"}


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_waiting_reply_says_where_it_stands_and_a_phone_shows_the_chat_first(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    monkeypatch: pytest.MonkeyPatch,
    locale: str,
) -> None:
    waiting, history_switch = WAITING[locale]
    # Behind the page, an engine with one slot, which another person's reply holds.
    line = LineEngine(FakeEngine(delay=0.02, max_concurrent=1, seed=30.0))
    monkeypatch.setattr(chat_app.services.engine, "_engine", line)
    line.fake.gate.acquire()
    page = open_browser(locale=locale, viewport=DESKTOP)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    chat.new_chat()
    expect(page.locator("#history-toggle")).to_be_hidden()  # desktop: the history beside the chat
    expect(page.locator("#history-search")).to_be_visible()

    marker = uuid.uuid4().hex[:8]
    reply = chat.send(f"queued {marker}")
    expect(page.locator(NOTICES).last).to_have_text(waiting)
    expect(page.locator(REPLIES)).to_have_count(0)  # the line is our notice, not a reply
    expect_running(page)
    shots(page, screenshot, f"chat-tab-{locale}-waiting")
    line.fake.gate.release()  # the other reply ends: this one runs
    assert reply.wait_done() == f"You said: queued {marker}"
    expect(page.locator(NOTICES)).to_have_count(0)  # the waiting line is gone with the reply
    expect_idle(page)

    # Esc stops a reply, here one still waiting in line: it leaves the line, saved as stopped.
    line.fake.gate.acquire()
    chat.send(f"never mind {marker}")
    # The estimate has learned from the reply that held the slot: only the seconds differ.
    expect(page.locator(NOTICES).last).to_have_text(re.compile(waiting.replace("30", r"\d+")))
    chat.message_box.press("Escape")
    expect_idle(page)
    expect(page.locator(NOTICES).last).to_have_text(STOPPED[locale])
    assert line.fake.load.waiting == 0  # its place in line was given back
    line.fake.gate.release()

    # A phone: the chat window and the message box on the first screen, the history behind a switch.
    page.set_viewport_size(PHONE)
    page.evaluate("() => window.scrollTo(0, 0)")
    expect(page.locator("#history-search")).to_be_hidden()
    switch = page.locator("#history-toggle")
    expect(switch).to_be_visible()
    expect(switch).to_contain_text(history_switch)
    box = chat.message_box.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    send = page.locator("#send").bounding_box()
    assert send is not None and send["y"] + send["height"] <= PHONE["height"], send
    screenshot(page, f"chat-tab-{locale}-phone-chat")
    switch.locator("input").check()
    expect(page.locator("#history-search")).to_be_visible()
    chat.expect_listed(f"queued {marker}")
    screenshot(page, f"chat-tab-{locale}-phone-history")
    switch.locator("input").uncheck()
    expect(page.locator("#history-search")).to_be_hidden()
    expect(chat.message_box).to_be_in_viewport()
