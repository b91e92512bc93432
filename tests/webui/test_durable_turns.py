"""A chat turn against the real SQL history and audit trail: what is on disk while the reply streams,
how often it is written, and that the conversation keeps alternating whatever happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import text as sql

from core.audit import CHAT_REPLY, CHAT_REQUEST
from core.identity import User
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from model.types import TextDelta
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import Database, create_database, migrate
from store.reply_recovery import ReplyRecovery
from webui.chat_service import SAVE_EVERY_DELTAS, SAVE_INTERVAL_SECONDS, ChatService, TurnContext
from webui.history_sidebar import shown_messages

ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))
CTX = TurnContext(ALICE)


@dataclass
class Store:
    url: str
    database: Database
    audit: AuditLog
    history: ChatHistory

    def outcomes(self, event_type: str) -> list[str | None]:
        return [r.outcome for r in reversed(self.audit.query(type=event_type).records)]


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/chat.db"
    database = create_database(url)
    migrate(database)
    audit = AuditLog(database)
    yield Store(url, database, audit, ChatHistory(database, audit))
    database.dispose()


@pytest.fixture
def other_connection(store: Store) -> Iterator[Database]:
    """What another process reading the same database file sees (committed data only)."""
    database = create_database(store.url)
    yield database
    database.dispose()


def wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.01)
    raise AssertionError("timed out")


def words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def test_while_a_reply_streams_its_question_request_record_and_partial_text_are_saved(
    store: Store, other_connection: Database
):
    service = ChatService(FakeEngine(delay=0.03), store.history, store.audit, GenerationSettings())
    message = words(100)  # a reply of 102 words: about 3 seconds
    updates = []
    worker = threading.Thread(target=lambda: updates.extend(service.reply(CTX, None, message)))
    worker.start()
    reader = ChatHistory(other_connection, store.audit)
    reader_audit = AuditLog(other_connection)

    def saved_mid_stream():
        listed = reader.list_conversations(ALICE.key)
        messages = reader.get_conversation(ALICE.key, listed[0].id).messages if listed else ()
        if len(messages) == 2 and messages[1].status == "streaming" and messages[1].content:
            return messages

    question, partial = wait_for(saved_mid_stream)
    ended_meanwhile = reader_audit.query(type=CHAT_REPLY).total
    [started] = reader_audit.query(type=CHAT_REQUEST).records
    worker.join(timeout=30)

    assert (question.role, question.content, question.status) == ("user", message, "complete")
    assert partial.role == "assistant"
    final = updates[-1]
    assert final.status == "complete" and final.reply == f"You said: {message}"
    assert final.reply.startswith(partial.content) and len(partial.content) < len(final.reply)
    assert (started.actor, started.target, started.outcome) == (
        ALICE.key,
        final.conversation_id,
        "started",
    )
    assert message[:50] in started.details
    assert ended_meanwhile == 0  # the reply record comes at the end, with the counts
    [ended] = store.audit.query(type=CHAT_REPLY).records
    assert (ended.target, ended.outcome) == (final.conversation_id, "complete")
    assert ended.details_dict["reply_tokens"] == 102
    saved = store.history.get_conversation(ALICE.key, final.conversation_id).messages[-1]
    assert (saved.content, saved.status) == (final.reply, "complete")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class PacedEngine(FakeEngine):
    """The echoing fake whose every delta takes `seconds` of a fake clock: an engine of known speed."""

    def __init__(self, clock: FakeTime, seconds: float) -> None:
        super().__init__()
        self._clock, self._seconds = clock, seconds

    def stream(self, request) -> PacedStream:
        return PacedStream(super().stream(request), self._clock, self._seconds)


class PacedStream:
    def __init__(self, inner, clock: FakeTime, seconds: float) -> None:
        self._inner, self._clock, self._seconds = inner, clock, seconds

    @property
    def final(self):
        return self._inner.final

    def __iter__(self) -> Iterator[TextDelta]:
        for delta in self._inner:
            self._clock.now += self._seconds
            yield delta

    def cancel(self) -> None:
        self._inner.cancel()


class CountingHistory:
    """The real history, noting each partial save (the length of the text saved)."""

    def __init__(self, inner: ChatHistory) -> None:
        self._inner = inner
        self.partial_saves: list[int] = []

    def create_conversation(self, owner_key: str, title: str):
        return self._inner.create_conversation(owner_key, title)

    def get_conversation(self, owner_key: str, conversation_id: str):
        return self._inner.get_conversation(owner_key, conversation_id)

    def start_turn(self, owner_key: str, conversation_id: str, user_text: str) -> int:
        return self._inner.start_turn(owner_key, conversation_id, user_text)

    def update_message(
        self, owner_key, conversation_id, message_id, content, status, notice=None
    ) -> None:
        if status == "streaming":
            self.partial_saves.append(len(content))
        self._inner.update_message(owner_key, conversation_id, message_id, content, status, notice)


@pytest.mark.parametrize(
    ("seconds_per_delta", "deltas"),
    [
        pytest.param(1 / 64, 256, id="fast engine: once a second"),
        pytest.param(1.0, 40, id=f"slow engine: every {SAVE_EVERY_DELTAS} deltas"),
    ],
)
def test_partial_saves_are_at_most_one_a_second_and_one_per_few_tokens(
    store: Store, seconds_per_delta: float, deltas: int
):
    clock = FakeTime()
    history = CountingHistory(store.history)
    service = ChatService(
        PacedEngine(clock, seconds_per_delta),
        history,
        store.audit,
        GenerationSettings(),
        clock=clock,
    )
    final = list(service.reply(CTX, None, words(deltas - 2)))[-1]  # "You said:" + the words

    assert final.status == "complete" and final.stats.completion_tokens == deltas
    elapsed = clock.now
    most = min(elapsed / SAVE_INTERVAL_SECONDS, deltas / SAVE_EVERY_DELTAS)
    saves = history.partial_saves
    assert most - 1 <= len(saves) <= most  # bounded by both, and saving as often as they allow
    assert saves == sorted(set(saves))  # each save holds more of the reply than the one before


def test_after_an_interrupted_reply_the_next_turn_continues_the_conversation(store: Store):
    # The server that crashed: the question, part of the reply, then kill -9 (no final save).
    crashed = ChatHistory(store.database, store.audit)
    conversation_id = crashed.create_conversation(ALICE.key, "story").id
    reply_id = crashed.start_turn(ALICE.key, conversation_id, "tell me a story")
    crashed.update_message(ALICE.key, conversation_id, reply_id, "Once upon a", "streaming")
    # The restarted server, two minutes later.
    later = datetime.now(UTC) + timedelta(minutes=2)
    history = ChatHistory(store.database, store.audit, lambda: later)
    recovery = ReplyRecovery(
        store.database, store.audit, history.live_replies, timedelta(seconds=60), lambda: later
    )
    assert recovery.run_once() == 1
    engine = FakeEngine()
    service = ChatService(engine, history, store.audit, GenerationSettings())

    final = list(service.reply(CTX, conversation_id, "go on"))[-1]

    assert final.status == "complete"
    assert [(m.role, m.content) for m in engine.requests[-1].messages] == [
        ("user", "tell me a story"),
        ("assistant", "Once upon a"),  # what the user saw before the crash is context
        ("user", "go on"),
    ]
    stored = history.get_conversation(ALICE.key, conversation_id).messages
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert store.outcomes(CHAT_REPLY) == ["interrupted", "complete"]
    # Reopened in the sidebar, the reply is followed by a notice that it was cut short.
    notice = shown_messages(stored, "zh-CN")[2]
    assert notice["metadata"]["title"] == "回复因服务器重启而中断。"
    shown = [
        (m["content"], m.get("metadata", {}).get("title")) for m in shown_messages(stored, "en")
    ]
    assert shown == [
        ("tell me a story", None),
        ("Once upon a", None),
        ("", "Reply interrupted by a server restart."),
        ("go on", None),
        ("You said: go on", None),  # a finished reply has no notice
    ]


def test_a_busy_engine_refuses_before_anything_is_saved(store: Store):
    engine = FakeEngine(max_concurrent=1, max_queue=0)
    service = ChatService(engine, store.history, store.audit, GenerationSettings())
    first = list(service.reply(CTX, None, "hello"))[-1]
    engine.gate.acquire()  # someone else's reply takes the only slot
    try:
        refused = list(service.reply(CTX, first.conversation_id, "again"))
    finally:
        engine.gate.release()

    assert [u.status for u in refused] == ["refused"] and "busy" in refused[0].notice
    stored = store.history.get_conversation(ALICE.key, first.conversation_id).messages
    assert [m.role for m in stored] == ["user", "assistant"]
    assert store.outcomes(CHAT_REQUEST) == ["started", "busy"]
    assert store.outcomes(CHAT_REPLY) == ["complete"]  # a refused turn has no reply record


def test_a_database_error_while_saving_the_turn_leaves_no_question_without_its_reply(
    store: Store,
):
    service = ChatService(FakeEngine(), store.history, store.audit, GenerationSettings())
    first = list(service.reply(CTX, None, "hello"))[-1]
    with store.database.write() as session:  # the second insert of the turn fails
        session.execute(
            sql(
                "CREATE TRIGGER no_replies BEFORE INSERT ON messages WHEN NEW.role = 'assistant' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )

    with pytest.raises(sqlalchemy.exc.DatabaseError, match="disk full"):
        list(service.reply(CTX, first.conversation_id, "again"))

    stored = store.history.get_conversation(ALICE.key, first.conversation_id).messages
    assert [m.content for m in stored] == ["hello", "You said: hello"]
    assert store.history.live_replies() == []
    assert store.outcomes(CHAT_REQUEST) == ["started"]  # the failed turn never started
