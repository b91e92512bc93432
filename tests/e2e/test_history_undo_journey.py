"""Journey: deleting a conversation can be undone for a short while, and the history's days are the
reader's, in English and Chinese, on a desktop and a phone.

Delete hides the conversation at once and the sidebar says so with an Undo button; Undo brings it
back, open, with its messages. Left alone, the line goes when the undo window is over and the
conversation with it, for good. The running app's window is shortened for that (the store's
`undo_window`, which the page reads at each load), so nobody waits out the real one. Conversations
are listed under Today / Yesterday / Earlier by the browser's own time zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from core.audit import CONVERSATION_DELETED, CONVERSATION_RESTORED, MemoryAuditSink
from store.chat_history import ChatHistory, ConversationNotFound
from store.database import Database, create_database
from store.schema import ConversationRow, MessageRow
from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import DESKTOP, PHONE, ChatPage, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot

SIZES = {"desktop": DESKTOP, "phone": PHONE}
DELETED = {"en-US": "“{title}” deleted.", "zh-CN": "已删除“{title}”。"}
UNDO = {"en-US": "Undo", "zh-CN": "撤销"}
HEADINGS = {"today": "Today", "yesterday": "Yesterday", "earlier": "Earlier"}
SHORT_WINDOW = timedelta(seconds=2)
# The Undo line's words and button (Gradio gives a group's elem_id to two nested elements).
UNDO_WORDS = "#history-undo-words"
UNDO_BUTTON = "#history-undo-button"


@pytest.fixture
def database(chat_app: ChatApp) -> Iterator[Database]:
    """A connection of the test's own to the app's database, to seed and to check what is kept."""
    opened = create_database(chat_app.settings.database.url)
    yield opened
    opened.dispose()


def seed(chat_app: ChatApp, title: str) -> str:
    """A conversation of STAFF's with one question and its answer, made through the app's store."""
    history, owner = chat_app.services.history, chat_app.user_key(STAFF)
    conversation = history.create_conversation(owner, title)
    history.append_message(owner, conversation.id, "user", f"What is in {title}?")
    history.append_message(owner, conversation.id, "assistant", f"{title} lists three things.")
    return conversation.id


def open_chat(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, locale: str, size: str
) -> ChatPage:
    page = open_browser(locale=locale, viewport=SIZES[size])
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    if size == "phone":  # the history is a drawer behind a switch
        page.locator("#history-toggle input").check()
    expect(page.locator("#history-search")).to_be_visible()
    return chat


def delete_open(chat: ChatPage, title: str, locale: str) -> None:
    chat.delete_open_conversation()
    expect(chat.page.locator(UNDO_WORDS)).to_be_visible()
    expect(chat.page.locator(UNDO_WORDS)).to_have_text(DELETED[locale].format(title=title))
    expect(chat.page.locator(UNDO_BUTTON)).to_have_text(UNDO[locale])
    chat.expect_not_listed(title)
    expect(chat.page.locator("#history-title textarea, #history-title input")).to_have_value("")


def stored_rows(database: Database, conversation_id: str) -> tuple[int, int]:
    with database.read() as session:
        conversations = session.scalars(
            select(ConversationRow.id).where(ConversationRow.id == conversation_id)
        ).all()
        messages = session.scalars(
            select(MessageRow.id).where(MessageRow.conversation_id == conversation_id)
        ).all()
    return len(conversations), len(messages)


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_undo_brings_a_deleted_conversation_back_with_its_messages(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    screenshot: Screenshot,
    locale: str,
    size: str,
) -> None:
    title = f"Budget {uuid.uuid4().hex[:6]}"
    conversation_id = seed(chat_app, title)
    chat = open_chat(open_browser, idp, chat_app, locale, size)
    chat.open_conversation(title, turns=1)

    delete_open(chat, title, locale)
    screenshot(chat.page, f"history-undo-{locale}-{size}")
    chat.page.locator(UNDO_BUTTON).click()

    expect(chat.page.locator(UNDO_BUTTON)).to_be_hidden()
    chat.expect_listed(title)
    expect(chat.page.locator("#history-title textarea, #history-title input")).to_have_value(title)
    expect(chat.user_messages).to_have_text([f"What is in {title}?"])
    expect(chat.bot_messages).to_have_text([f"{title} lists three things."])
    chat.reload()
    chat.expect_listed(title)  # restored in the store, not only on this page
    history = chat_app.services.history
    assert history.get_conversation(chat_app.user_key(STAFF), conversation_id).title == title


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_after_the_undo_window_the_conversation_is_gone_for_good(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    locale: str,
    size: str,
) -> None:
    history = chat_app.services.history
    monkeypatch.setattr(history, "undo_window", SHORT_WINDOW)
    title = f"Offsite {uuid.uuid4().hex[:6]}"
    conversation_id = seed(chat_app, title)
    chat = open_chat(open_browser, idp, chat_app, locale, size)
    chat.open_conversation(title, turns=1)

    delete_open(chat, title, locale)

    # The line goes by itself once the window is over; the conversation does not come back.
    expect(chat.page.locator(UNDO_BUTTON)).to_be_hidden(timeout=15_000)
    chat.expect_not_listed(title)
    owner = chat_app.user_key(STAFF)
    with pytest.raises(ConversationNotFound):
        history.restore(owner, conversation_id)
    # The sweep (or the next delete) purges it with its messages.
    history.purge_deleted()
    assert stored_rows(database, conversation_id) == (0, 0)
    chat.reload()
    chat.expect_not_listed(title)


def test_a_deleted_conversation_is_audited_as_deleted_then_restored(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, database: Database
) -> None:
    title = f"Audited {uuid.uuid4().hex[:6]}"
    conversation_id = seed(chat_app, title)
    chat = open_chat(open_browser, idp, chat_app, "en-US", "desktop")
    chat.open_conversation(title, turns=1)
    delete_open(chat, title, "en-US")
    chat.page.locator(UNDO_BUTTON).click()
    chat.expect_listed(title)

    audit_log = chat_app.services.audit_log
    assert audit_log is not None
    events = [
        (record.type, record.outcome)
        for kind in (CONVERSATION_DELETED, CONVERSATION_RESTORED)
        for record in audit_log.query(type=kind).records
        if record.target == conversation_id
    ]
    assert events == [(CONVERSATION_DELETED, "deleted"), (CONVERSATION_RESTORED, "restored")]


def heading(moment: datetime, zone: tzinfo, now: datetime) -> str:
    """The sidebar group a conversation last active at `moment` belongs to, for a reader in `zone`."""
    days = (now.astimezone(zone).date() - moment.astimezone(zone).date()).days
    return {0: "today", 1: "yesterday"}.get(days, "earlier")


def differing_instant(zone: tzinfo, now: datetime) -> datetime:
    """A recent moment the reader in `zone` files under another heading than UTC would: a minute
    either side of the reader's or UTC's last midnight (one of them always is)."""
    local_midnight = datetime.combine(now.astimezone(zone).date(), time(), zone)
    utc_midnight = datetime.combine(now.date(), time(), UTC)
    minute = timedelta(minutes=1)
    candidates = [m + d for m in (local_midnight, utc_midnight) for d in (-minute, minute)]
    for moment in candidates:
        if moment < now - minute and heading(moment, zone, now) != heading(moment, UTC, now):
            return moment
    raise AssertionError(f"no moment files differently in {zone} and UTC at {now}")


def earlier_instant(zone: tzinfo, now: datetime) -> datetime:
    """Four days ago in `zone`, at a minute past midnight or before the next one, whichever has
    another UTC date than the reader's."""
    day = now.astimezone(zone).date() - timedelta(days=4)
    for clock_time in (time(0, 1), time(23, 59)):
        moment = datetime.combine(day, clock_time, zone)
        if moment.astimezone(UTC).date() != day:
            return moment
    raise AssertionError(f"{zone} has UTC's dates")


@pytest.mark.parametrize(
    ("zone_name", "locale"), [("Asia/Shanghai", "en-US"), ("America/Los_Angeles", "zh-CN")]
)
def test_the_history_is_grouped_by_the_browsers_days(
    open_browser: Callable[..., Page],
    idp: Idp,
    chat_app: ChatApp,
    database: Database,
    screenshot: Screenshot,
    zone_name: str,
    locale: str,
) -> None:
    zone = ZoneInfo(zone_name)
    now = datetime.now(UTC)
    recent_at, earlier_at = differing_instant(zone, now), earlier_instant(zone, now)
    owner, marker = chat_app.user_key(STAFF), uuid.uuid4().hex[:6]
    recent, earlier = f"Night shift {marker}", f"Kickoff {marker}"
    for title, moment in ((recent, recent_at), (earlier, earlier_at)):
        # The app's own store code, on the app's database, with the clock at that moment.
        ChatHistory(database, MemoryAuditSink(), lambda m=moment: m).create_conversation(
            owner, title
        )

    page = open_browser(locale=locale, viewport=DESKTOP, timezone_id=zone_name)
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)

    group = page.locator(f"#history-{heading(recent_at, zone, now)}")
    expect(group.locator("label").filter(has_text=recent)).to_have_count(1)
    assert heading(recent_at, zone, now) != heading(recent_at, UTC, now)
    local_date = earlier_at.astimezone(zone).date().isoformat()
    expect(page.locator("#history-earlier label").filter(has_text=earlier)).to_have_text(
        f"{earlier} · {local_date}"
    )
    screenshot(page, f"history-days-{zone_name.replace('/', '-')}")
    # The search's refresh keeps the reader's days too.
    box = page.locator("#history-search textarea, #history-search input")
    box.fill(marker)
    expect(chat.conversations).to_have_count(2)
    expect(group.locator("label").filter(has_text=recent)).to_have_count(1)
