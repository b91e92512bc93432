"""The chat tab with a real SQLite history behind it: automatic titles, the sidebar's days and its
"nothing found" message, notices in a reopened conversation, and Clear starting a new conversation
(the last through the running app, as the browser drives it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.identity import User
from model.engine import QueuePlace
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from model.types import GenerationStats, TextDelta
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from tests.gradio_queue import completed, join, messages, render_page
from tests.webui.line_engine import LineEngine
from webui.chat_service import ChatService, TurnContext
from webui.conversation_titles import auto_title
from webui.history_sidebar import group_by_day, listing_updates, shown_messages

ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def history(tmp_path, clock) -> Iterator[ChatHistory]:
    database = create_database(f"sqlite:///{tmp_path}/tab.db")
    migrate(database)
    yield ChatHistory(database, AuditLog(database), clock)
    database.dispose()


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("## **Quarterly** report for `Q3`", "Quarterly report for Q3"),
        ("```python\nprint(1)\n```\nwhy does this fail?", "print(1) why does this fail?"),
        ("- [ ] buy milk\n- call *Bob*", "buy milk call Bob"),
        (
            "1. Read [the guide](https://intra.example/guide) and ![chart](c.png)",
            "Read the guide and chart",
        ),
        ("> quoted __text__\n\n---\n", "quoted text"),
        ("snake_case names in C# code", "snake_case names in C# code"),
        (
            "Please explain the difference between processes and threads in detail",
            "Please explain the difference between processes…",
        ),
        (
            "请详细解释一下进程和线程之间的区别以及各自适用的场景和例子",
            "请详细解释一下进程和线程之间的区别以及各自适用的…",
        ),
        ("  \n```\n```", "New chat"),
    ],
)
def test_automatic_titles_are_plain_words_cut_on_a_word_boundary(message, title):
    assert auto_title(message) == title


def test_a_new_conversation_is_titled_from_its_first_message_without_markdown(history):
    service = ChatService(FakeEngine(), history, AuditLog(history._db), GenerationSettings())
    first = "# Trip to **Berlin**\nWhat should I *pack* for a week in [March](https://x.example)?"
    final = list(service.reply(TurnContext(ALICE), None, first))[-1]
    assert final.status == "complete"
    [listed] = history.list_conversations(ALICE.key)
    assert listed.title == "Trip to Berlin What should I pack for a week in…"
    assert history.get_conversation(ALICE.key, listed.id).messages[0].content == first.strip()


def test_the_sidebar_groups_conversations_by_day_and_dates_the_earlier_ones(history, clock):
    made = {}
    for name, moment in [
        ("old", NOON - timedelta(days=9)),
        ("two days", NOON - timedelta(days=2)),
        ("late yesterday", NOON.replace(hour=23, minute=50) - timedelta(days=1)),
        ("early today", NOON.replace(hour=0, minute=5)),
        ("now", NOON),
    ]:
        clock.now = moment
        made[name] = history.create_conversation(ALICE.key, name).id
    today, yesterday, earlier = group_by_day(history.list_conversations(ALICE.key), NOON.date())
    assert today == [("now", made["now"]), ("early today", made["early today"])]
    assert yesterday == [("late yesterday", made["late yesterday"])]
    assert earlier == [
        ("two days · 2026-03-08", made["two days"]),
        ("old · 2026-03-01", made["old"]),
    ]
    # The open conversation stays selected in its own group only; empty groups are hidden.
    groups = listing_updates(
        history.list_conversations(ALICE.key, search="two"),
        "two",
        made["two days"],
        "en",
        NOON.date(),
    )
    assert [(g["visible"], g["value"]) for g in groups[:3]] == [
        (False, None),
        (False, None),
        (True, made["two days"]),
    ]
    assert groups[3]["visible"] is False  # something was found: no message


@pytest.mark.parametrize(
    ("locale", "found_nothing", "no_history"),
    [
        ("en", "No conversations match “\\*budget\\*”.", "No conversations yet."),
        ("zh-CN", "没有与“\\*budget\\*”匹配的对话。", "还没有对话"),
    ],
)
def test_a_search_that_finds_nothing_says_so_in_the_readers_language(
    history, locale, found_nothing, no_history
):
    history.create_conversation(ALICE.key, "Quarterly report")
    found = history.list_conversations(ALICE.key, search="*budget*")
    assert found == []
    updates = listing_updates(found, " *budget* ", None, locale, NOON.date())
    assert [u["visible"] for u in updates] == [False, False, False, True]
    assert updates[3]["value"] == found_nothing  # what was typed, shown literally
    nothing_yet = listing_updates([], "", None, locale, NOON.date())[3]
    assert nothing_yet["visible"] and nothing_yet["value"].startswith(no_history)


def test_a_reopened_conversation_shows_unfinished_replies_with_notices_apart(history):
    conversation = history.create_conversation(ALICE.key, "Story").id
    for question, reply, status in [
        ("tell me a story", "Once upon a", "stopped"),
        ("again", "", "error"),
        ("and again", "The end", "complete"),
        ("once more", "Half", "interrupted"),
    ]:
        history.append_message(ALICE.key, conversation, "user", question)
        history.append_message(ALICE.key, conversation, "assistant", reply, status=status)
    stored = history.get_conversation(ALICE.key, conversation).messages

    def seen(locale: str) -> list[tuple[str, str]]:
        return [
            ("notice", m["metadata"]["title"]) if m.get("metadata") else (m["role"], m["content"])
            for m in shown_messages(stored, locale)
        ]

    assert seen("en") == [
        ("user", "tell me a story"),
        ("assistant", "Once upon a"),
        ("notice", "Reply stopped."),
        ("user", "again"),
        ("notice", "The reply failed."),  # nothing was written: no empty bubble
        ("user", "and again"),
        ("assistant", "The end"),
        ("user", "once more"),
        ("assistant", "Half"),
        ("notice", "Reply interrupted by a server restart."),
    ]
    assert [title for kind, title in seen("zh-CN") if kind == "notice"] == [
        "回复已停止。",
        "回复失败。",
        "回复因服务器重启而中断。",
    ]


class Tab:
    """The chat tab of one browser tab, its events sent through queue/join as the page sends them."""

    def __init__(self, client: httpx.Client, session_hash: str) -> None:
        self.client, self.session_hash = client, session_hash
        rendered = render_page(client, session_hash)
        self.ids = {c["props"].get("elem_id"): c["id"] for c in rendered["components"]}
        self.dependencies = rendered["dependencies"]

    def fire(self, elem_id: str, event: str, data: list) -> dict[str, Any]:
        # (A listener that cancels others comes with a second one, without outputs, for that.)
        [fn] = [
            d["id"]
            for d in self.dependencies
            if [self.ids[elem_id], event] in d["targets"] and d["outputs"]
        ]
        assert join(self.client, self.session_hash, fn, data).status_code == 200
        done = completed(self.client, self.session_hash)
        assert done["success"], done
        return done["output"]["data"]

    def send(self, text: str) -> list:
        return self.fire("send", "click", [text, None])  # the conversation is server-side state


@pytest.mark.parametrize("reset", [("chatbot", "clear"), ("new-chat", "click")])
def test_clear_and_new_chat_start_a_new_conversation(chat_server, reset):
    chat = chat_server(FakeEngine(delay=0.001))
    tab = Tab(chat.login("alice"), "clear-tab")
    shown = tab.send("first question")
    assert [m["role"] for m in shown[0]] == ["user", "assistant"]
    assert shown[4:] == [
        {"visible": True, "__type__": "update"},
        {"visible": "hidden", "__type__": "update"},
    ]  # the row with Send shown again, the one with Stop out of the way
    assert len(tab.send("second question")[0]) == 4  # same conversation

    emptied = tab.fire(*reset, [])
    assert emptied[0] == []
    assert len(tab.send("third question")[0]) == 2  # a new conversation, not the old one

    history, owner = chat.services.history, chat.key("alice")
    contents = [
        [m.content for m in history.get_conversation(owner, c.id).messages if m.role == "user"]
        for c in history.list_conversations(owner)
    ]
    assert contents == [["third question"], ["first question", "second question"]]


def test_a_reply_waiting_for_the_engine_shows_its_place_in_line_then_the_reply(chat_server):
    # One slot, taken; one more request in line before bob's: bob waits with one ahead of him.
    engine = LineEngine(FakeEngine(delay=0.01, max_concurrent=1, seed=20.0))
    chat = chat_server(engine)
    gate = engine.fake.gate
    gate.acquire()
    earlier = gate.reserve()
    tab = Tab(chat.login("bob"), "waiting-tab")
    [fn] = [
        d["id"]
        for d in tab.dependencies
        if [tab.ids["send"], "click"] in d["targets"] and d["outputs"]
    ]
    assert join(tab.client, tab.session_hash, fn, ["where do I stand?", None]).status_code == 200

    seen: list[str] = []
    for message in messages(tab.client, tab.session_hash):
        shown = json.dumps(message.get("output", {}), ensure_ascii=False)
        seen.append(shown)
        if "Waiting for a free slot: 1 ahead of yours, about 40 s" in shown:
            gate.unreserve(earlier)  # the one ahead leaves the line: bob is next
        elif "Waiting for a free slot: yours is next, about 20 s" in shown and gate.running:
            gate.release()  # the slot frees: bob's reply runs
        if message.get("msg") == "process_completed":
            break
    waiting = [i for i, s in enumerate(seen) if "Waiting for a free slot" in s]
    writing = [i for i, s in enumerate(seen) if "You said: where do I stand?" in s]
    assert waiting and writing and waiting[-1] < writing[0], seen
    assert any("yours is next" in s for s in seen), seen
    final = message["output"]["data"][0]
    assert final[-1]["content"] == [{"text": "You said: where do I stand?", "type": "text"}]
    assert "Waiting" not in json.dumps(final)  # the waiting line is gone once the reply is there


def test_scripts_are_not_sent_queued_updates_unless_they_ask(history):
    engine = LineEngine(FakeEngine(max_concurrent=1))
    service = ChatService(engine, history, AuditLog(history._db), GenerationSettings())
    engine.fake.gate.acquire()
    threading.Timer(1.5, engine.fake.gate.release).start()
    statuses = [u.status for u in service.reply(TurnContext(ALICE), None, "plain")]
    assert statuses[0] == "streaming" and "queued" not in statuses and statuses[-1] == "complete"


class SlowFirstStream:
    """Like the real engine's stream: `final` is set only when the iteration reaches its end
    (after a cancel, within a step), never when the iterator is merely closed."""

    def __init__(self) -> None:
        self.final: GenerationStats | None = None
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[TextDelta]:
        return self._deltas()

    def _deltas(self) -> Iterator[TextDelta]:
        time.sleep(0.5)  # the first token comes after the first look at the line
        while not self._cancelled.wait(0.01):
            yield TextDelta("word ")
        self.final = GenerationStats(finish_reason="cancelled")

    def cancel(self) -> None:
        self._cancelled.set()

    def queue_place(self) -> QueuePlace | None:
        return None


class OneStreamEngine:
    def __init__(self, stream: SlowFirstStream) -> None:
        self.stream = lambda request: stream


def test_a_reply_stopped_after_its_first_token_is_read_to_its_end_for_its_stats(history, caplog):
    stream = SlowFirstStream()
    service = ChatService(
        OneStreamEngine(stream), history, AuditLog(history._db), GenerationSettings()
    )
    updates = service.reply(TurnContext(ALICE), None, "go on", report_queue=True)
    for update in updates:
        if update.reply.count("word") >= 3:
            break
    updates.close()  # Stop
    assert stream.final is not None and stream.final.finish_reason == "cancelled"
    assert "without its final stats" not in caplog.text
    [conversation] = history.list_conversations(ALICE.key)
    saved = history.get_conversation(ALICE.key, conversation.id).messages
    assert saved[-1].status == "stopped" and saved[-1].content.startswith("word word word")
