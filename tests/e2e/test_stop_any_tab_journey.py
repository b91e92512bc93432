"""Journey: one person, two tabs. A reply runs in the first; in the second a message is refused
("one reply at a time") and Stop is offered there until that reply ends; pressing it stops the
reply in the first tab, which shows the stopped notice and Send again, and the conversation
reopened later shows it stopped. In English and Chinese, at desktop and phone sizes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
import redis
from playwright.sync_api import Page, expect

from core.audit import CHAT_REPLY
from tests.backends import REDIS_URL
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_messages import NOTICES, REPLIES
from tests.e2e.chat_pages import DESKTOP, PHONE, ChatPage, expect_idle, sign_in_to_chat
from tests.e2e.harness import ADMIN, STAFF, Idp, IdpAccount
from tests.e2e.idp_pages import Screenshot
from tests.e2e.test_script_journey import create_token, stream_with_token, wait_for
from webui.i18n import text

SLOW_TOKENS_PER_SECOND = 8.0  # 120 tokens: 15 s, time enough to switch tabs and press Stop


def expect_stop_offered(page: Page) -> None:
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#send-busy")).to_be_disabled()


@pytest.mark.parametrize(
    ("locale", "viewport", "other"),
    [("en-US", DESKTOP, PHONE), ("zh-CN", PHONE, DESKTOP)],
    ids=["en-desktop", "zh-CN-phone"],
)
def test_stop_in_a_second_tab_stops_the_reply_running_in_the_first(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    monkeypatch: pytest.MonkeyPatch,
    locale: str,
    viewport: dict[str, int],
    other: dict[str, int],
) -> None:
    language = "zh-CN" if locale == "zh-CN" else "en"
    monkeypatch.setattr(chat_app.services.engine, "_interval", 1.0 / SLOW_TOKENS_PER_SECOND)
    marker = uuid.uuid4().hex[:8]
    first = open_browser(locale=locale, viewport=DESKTOP)
    one = sign_in_to_chat(first, idp, chat_app.url, STAFF)
    one.new_chat()  # (on a phone New chat is in the history drawer)
    first.set_viewport_size(viewport)
    second = first.context.new_page()  # the same browser: already signed in
    second.set_viewport_size(viewport)
    second.goto(chat_app.url + "/")
    two = ChatPage(second, chat_app.url).expect_loaded()
    expect_idle(second)

    question = f"A long story about {marker}"
    reply = one.send(question)
    reply.wait_started(min_chars=10)

    # The second tab: its message is refused, and Stop is offered for the reply running elsewhere.
    refused = two.send(f"Meanwhile {marker}")
    assert refused.wait_refused() == text("one_at_a_time", language)
    expect_stop_offered(second)
    expect(two.message_box).to_have_value(f"Meanwhile {marker}")  # kept to send again
    shot(second, screenshot, f"stop-any-tab-{locale}-offered", viewport, other)
    two.stop()

    # The first tab: the reply ends as a Stop there would end it.
    reply.wait_done()
    owner = chat_app.user_key(STAFF)
    history = chat_app.services.history
    [conversation] = history.list_conversations(owner, search=marker)
    saved = history.get_conversation(owner, conversation.id).messages
    assert [(m.role, m.status) for m in saved] == [("user", "complete"), ("assistant", "stopped")]
    [ended] = [
        r
        for r in chat_app.services.audit_log.query(type=CHAT_REPLY).records
        if r.target == conversation.id
    ]
    assert ended.outcome == "stopped"

    expect(first.locator(NOTICES).last).to_have_text(text("notice_stopped", language))
    expect_idle(first)
    expect_idle(second)  # the reply it offered to stop has ended
    shot(first, screenshot, f"stop-any-tab-{locale}-stopped", viewport, other)

    # Reopened later (here in the second tab), the conversation shows the reply stopped.
    second.set_viewport_size(DESKTOP)
    two.conversations.filter(has_text=question).click()
    expect(two.user_messages).to_have_count(1)
    expect(second.locator(REPLIES)).to_have_count(1)
    expect(second.locator(NOTICES).last).to_have_text(text("notice_stopped", language))
    shot(second, screenshot, f"stop-any-tab-{locale}-reopened", DESKTOP, PHONE)

    # And the second tab sends as usual again.
    monkeypatch.setattr(chat_app.services.engine, "_interval", 0.0)
    assert two.send(f"Now {marker}").wait_done()
    expect_idle(second)
    expect(second.locator(NOTICES)).to_have_count(1)  # the stopped one only


def shot(
    page: Page,
    screenshot: Screenshot,
    name: str,
    viewport: dict[str, int],
    other: dict[str, int],
) -> None:
    """The page at the journey's size, then at the other one, then back."""
    suffix = {id(DESKTOP): "desktop", id(PHONE): "phone"}
    screenshot(page, f"{name}-{suffix[id(viewport)]}")
    page.set_viewport_size(other)
    page.wait_for_timeout(300)  # the layout settles
    screenshot(page, f"{name}-{suffix[id(other)]}")
    page.set_viewport_size(viewport)


def test_a_scripts_reply_is_stopped_from_its_owners_page_and_never_by_someone_elses(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_app.services.engine, "_interval", 1.0 / SLOW_TOKENS_PER_SECOND)
    marker = uuid.uuid4().hex[:8]
    alice = sign_in_to_chat(open_browser(viewport=DESKTOP), idp, chat_app.url, STAFF)
    secret = create_token(alice, f"stop test {marker}")
    alice.tab("Chat").click()
    carol = sign_in_to_chat(open_browser(viewport=DESKTOP), idp, chat_app.url, ADMIN)

    # Carol presses Stop (the button is hidden on her page: a script clicks it anyway) while
    # Alice's script streams: her Stop is counted for her alone, and Alice's reply runs to its end.
    alices_stops, carols_stops = stops_counted(chat_app, STAFF), stops_counted(chat_app, ADMIN)
    first: list[dict] = []
    script = start_script(chat_app.url, secret, f"first {marker}", first)
    wait_for(lambda: len(first) >= 3, "the script's first partial replies")
    carol.page.evaluate("() => document.getElementById('stop').click()")
    wait_for(
        lambda: stops_counted(chat_app, ADMIN) == carols_stops + 1, "Carol's Stop on the server"
    )
    script.join(timeout=60)
    assert first[-1]["status"] == "complete", first[-1]
    assert stops_counted(chat_app, STAFF) == alices_stops

    # Alice's own page: a message of hers is refused while her script's reply runs, Stop is
    # offered, and it stops the script's reply, which the script sees as stopped.
    second: list[dict] = []
    script = start_script(chat_app.url, secret, f"second {marker}", second)
    wait_for(lambda: len(second) >= 3, "the script's first partial replies")
    alice.send(f"from the page {marker}").wait_refused()
    expect_stop_offered(alice.page)
    screenshot(alice.page, "stop-any-tab-script-offered-desktop")
    alice.stop()
    script.join(timeout=60)
    assert second[-1]["status"] == "stopped", second[-1]
    expect_idle(alice.page)
    owner = chat_app.user_key(STAFF)
    saved = chat_app.services.history.get_conversation(owner, second[-1]["conversation_id"])
    assert (saved.messages[-1].status, saved.messages[-1].content) == (
        "stopped",
        second[-1]["reply"],
    )


def start_script(url: str, secret: str, message: str, updates: list[dict]) -> threading.Thread:
    script = threading.Thread(target=stream_with_token, args=(url, secret, message, updates))
    script.start()
    return script


def stops_counted(chat_app: ChatApp, account: IdpAccount) -> int:
    """How many times `account` pressed Stop, as the replicas' shared Redis holds it."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        key = f"{chat_app.settings.limits.key_prefix}:stop:{chat_app.user_key(account)}"
        return int(client.get(key) or 0)
    finally:
        client.close()
