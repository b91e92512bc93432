"""Journey: write the last reply again, edit the last question, and start a new chat at once.

Retry on the last reply asks the same question again in place of that reply; editing the last
question replaces the question and its reply; an earlier question cannot be edited (a toast says
so and the chat stays as it was). The conversation reopened from the history holds the same turns
as the page showed. A message sent right after New chat is never stopped by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from model.fake_engine import FakeEngine
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_messages import REPLIES
from tests.e2e.chat_pages import (
    DESKTOP,
    PHONE,
    TOASTS,
    ChatPage,
    settled_text,
    sign_in_to_chat,
)
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot

WORDS = {
    "en-US": {
        "retry": "Retry",
        "edit": "Edit",
        "submit": "Submit",
        "only_last": "Only your last message can be edited.",
        "toast_title": "Warning",
        "close": "Close",
    },
    "zh-CN": {
        "retry": "重试",
        "edit": "编辑",
        "submit": "发送",
        "only_last": "只能编辑您的最后一条消息。",
        "toast_title": "提示",
        "close": "关闭",
    },
}


def expect_turns(chat: ChatPage, questions: list[str]) -> None:
    """The chat shows exactly these questions, each answered by the engine's echo."""
    expect(chat.user_messages).to_have_count(len(questions))
    expect(chat.page.locator(REPLIES)).to_have_count(len(questions))
    for index, question in enumerate(questions):
        expect(chat.user_messages.nth(index)).to_have_text(question)
        assert settled_text(chat.page.locator(REPLIES).nth(index)) == f"You said: {question}"


def message_button(chat: ChatPage, name: str) -> None:
    chat.page.locator("#chatbot").get_by_role("button", name=name, exact=True).last.click()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_retry_the_last_reply_and_edit_the_last_question(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    monkeypatch: pytest.MonkeyPatch,
    locale: str,
) -> None:
    words = WORDS[locale]
    engine = FakeEngine(delay=0.02)  # replies say what they answer: "You said: ..."
    monkeypatch.setattr(chat_app.services.engine, "_engine", engine)
    page = open_browser(locale=locale, viewport=DESKTOP)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    chat.new_chat()
    marker = uuid.uuid4().hex[:6]
    first, second = f"first {marker}", f"second {marker}"
    chat.send(first).wait_done()
    chat.send(second).wait_done()
    expect_turns(chat, [first, second])

    # Retry on the last reply: the same question again, in place of the old reply.
    asked = len(engine.requests)
    reply = chat.watch_reply()
    message_button(chat, words["retry"])
    reply.wait_done()
    expect_turns(chat, [first, second])
    assert len(engine.requests) == asked + 1
    assert [m.content for m in engine.requests[-1].messages] == [
        first,
        f"You said: {first}",
        second,
    ]
    screenshot(page, f"rewrite-{locale}-retried-desktop")

    # Edit the last question: the question and its reply are replaced.
    edited = f"second, edited {marker}"
    message_button(chat, words["edit"])
    editor = page.locator("#chatbot textarea")
    expect(editor).to_be_visible()
    page.set_viewport_size(PHONE)
    screenshot(page, f"rewrite-{locale}-editing-phone")
    page.set_viewport_size(DESKTOP)
    editor.fill(edited)
    reply = chat.watch_reply()
    message_button(chat, words["submit"])
    reply.wait_done()
    expect_turns(chat, [first, edited])

    # An earlier question cannot be edited: a toast says so, the chat stays as it was.
    chat.user_messages.first.hover()
    page.locator("#chatbot").get_by_role("button", name=words["edit"], exact=True).first.click()
    editor = page.locator("#chatbot textarea")
    editor.fill(f"rewrite history {marker}")
    message_button(chat, words["submit"])
    expect(page.locator(TOASTS).last).to_contain_text(words["only_last"])
    expect(page.locator(TOASTS).last).to_contain_text(words["toast_title"])
    close = page.locator(f"{TOASTS} [data-testid=toast-close]").last
    expect(close).to_have_attribute("aria-label", words["close"])
    expect_turns(chat, [first, edited])
    page.set_viewport_size(PHONE)
    screenshot(page, f"rewrite-{locale}-refused-phone")
    page.set_viewport_size(DESKTOP)

    # Reopened from the history: the turns the page showed, nothing more.
    chat.reload()
    chat.open_conversation(first, turns=2)
    expect_turns(chat, [first, edited])
    screenshot(page, f"rewrite-{locale}-reopened-desktop")


def test_typing_during_a_reply_is_kept_and_a_message_sent_right_after_new_chat_is_answered(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_app.services.engine, "_engine", FakeEngine(delay=0.05))
    page = open_browser(locale="en-US", viewport=DESKTOP)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    marker = uuid.uuid4().hex[:6]
    long_one = chat.send(f"a long one {marker} " + "word " * 60)
    long_one.wait_started()
    # What is typed while a reply streams stays in the box, token after token.
    chat.message_box.fill(f"typed while it streams {marker}")
    long_one.wait_started(min_chars=120)
    expect(chat.message_box).to_have_value(f"typed while it streams {marker}")
    for attempt in range(3):
        # New chat and Send in the same instant: no wait for New chat's handler in between.
        question = f"right after new chat {attempt} {marker}"
        chat.message_box.fill(question)
        reply = chat.watch_reply()
        page.locator("#new-chat").click()
        page.locator("#message textarea").press("Enter")
        assert reply.wait_done() == f"You said: {question}"
        expect_turns(chat, [question])
        chat.send(f"a long one {attempt} {marker} " + "word " * 60).wait_started()
