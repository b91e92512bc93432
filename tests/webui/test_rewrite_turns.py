"""Regenerate the last reply and edit the last question, against the real SQL history and audit
trail: the conversation keeps alternating question, reply, and the model never sees the old turn."""

from __future__ import annotations

import json

import pytest

from core.audit import CHAT_REQUEST
from core.identity import User
from guards.rate_limits import Limited
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from store.chat_history import ChatHistory
from webui.chat_service import ChatService, TurnContext, TurnGuards
from webui.history_sidebar import shown_messages

ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))
BOB = User(issuer="https://idp.test", subject="bob", email=None, groups=("staff",))


@pytest.fixture
def store(sql_store):
    return sql_store


def turn(service: ChatService, user: User, conversation_id, message, **options):
    return list(service.reply(TurnContext(user), conversation_id, message, **options))[-1]


def saved(history: ChatHistory, conversation_id: str) -> list[tuple[str, str, str]]:
    messages = history.get_conversation(ALICE.key, conversation_id).messages
    return [(m.role, m.content, m.status) for m in messages]


def test_regenerate_asks_the_last_question_again_in_place_of_the_old_reply(store):
    history, audit = store
    engine = FakeEngine()
    service = ChatService(engine, history, audit, GenerationSettings())
    first = turn(service, ALICE, None, "first question")
    cid = first.conversation_id
    turn(service, ALICE, cid, "second question")

    again = turn(service, ALICE, cid, "", replace_last=True)
    assert (again.status, again.reply) == ("complete", "You said: second question")
    assert saved(history, cid) == [
        ("user", "first question", "complete"),
        ("assistant", "You said: first question", "complete"),
        ("user", "second question", "complete"),
        ("assistant", "You said: second question", "complete"),
    ]
    # The model saw the earlier turns and the question once, not the reply it replaces.
    asked = [(m.role, m.content) for m in engine.requests[-1].messages]
    assert asked == [
        ("user", "first question"),
        ("assistant", "You said: first question"),
        ("user", "second question"),
    ]
    records = [json.loads(r.details) for r in audit.query(type=CHAT_REQUEST).records]
    assert records[0].get("replaced_last_turn") is True  # newest first
    assert "replaced_last_turn" not in records[1]


def test_an_edited_last_question_replaces_the_question_and_its_reply(store):
    history, audit = store
    service = ChatService(FakeEngine(), history, audit, GenerationSettings())
    cid = turn(service, ALICE, None, "What is 2+2?").conversation_id

    edited = turn(service, ALICE, cid, "What is 3+3?", replace_last=True)
    assert edited.status == "complete"
    assert saved(history, cid) == [
        ("user", "What is 3+3?", "complete"),
        ("assistant", "You said: What is 3+3?", "complete"),
    ]


def test_nothing_to_redo_is_refused_with_a_message_and_changes_nothing(store):
    history, audit = store
    service = ChatService(FakeEngine(), history, audit, GenerationSettings())
    empty = turn(service, ALICE, None, "", replace_last=True)
    assert empty.status == "refused" and "Send a new message" in empty.notice
    cid = history.create_conversation(ALICE.key, "Empty").id
    refused = turn(service, ALICE, cid, "edited", replace_last=True)
    assert refused.status == "refused" and saved(history, cid) == []
    chinese = list(service.reply(TurnContext(ALICE, locale="zh-CN"), cid, "", replace_last=True))
    assert chinese[-1].notice == "这里没有可重新生成的已完成回复。请直接发送新消息。"


def test_someone_elses_conversation_cannot_be_regenerated_or_edited(store):
    history, audit = store
    service = ChatService(FakeEngine(), history, audit, GenerationSettings())
    cid = turn(service, ALICE, None, "private question").conversation_id
    for message in ("", "ignore that and say hi"):
        refused = turn(service, BOB, cid, message, replace_last=True)
        assert refused.status == "refused" and refused.conversation_id is None
    assert saved(history, cid)[0] == ("user", "private question", "complete")


class OneMessageOnly:
    """A limiter that lets one message through, then refuses: the quota ran out."""

    def __init__(self) -> None:
        self.sent = 0

    def hit_chat(self, user_key, ip=None):
        self.sent += 1
        return None if self.sent == 1 else Limited("chat_per_minute", retry_after=30)

    def check_tokens(self, user_key, ip=None):
        return None

    def consume_tokens(self, user_key, n):
        return None


def test_a_refused_rewrite_keeps_the_turn_it_would_have_replaced(store):
    history, audit = store
    guards = TurnGuards(limiter=OneMessageOnly())
    service = ChatService(FakeEngine(), history, audit, GenerationSettings(), guards=guards)
    cid = turn(service, ALICE, None, "question").conversation_id
    limited = turn(service, ALICE, cid, "", replace_last=True)
    assert limited.status == "rate_limited" and limited.retry_after == 30
    assert saved(history, cid) == [
        ("user", "question", "complete"),
        ("assistant", "You said: question", "complete"),
    ]


def test_a_failed_reply_reopened_says_why_it_failed_in_the_readers_language(store):
    history, audit = store
    service = ChatService(FakeEngine(fail_after=2), history, audit, GenerationSettings())
    failed = turn(service, ALICE, None, "a question that breaks the model")
    assert failed.status == "error"
    messages = history.get_conversation(ALICE.key, failed.conversation_id).messages
    for locale, words in (
        ("en", "The model failed to answer. Please try again"),
        ("zh-CN", "模型未能回答"),
    ):
        [notice] = [m for m in shown_messages(messages, locale) if "metadata" in m]
        assert notice["metadata"]["title"].startswith(words)


def test_a_conversation_deleted_while_its_reply_streams_ends_the_reply_with_a_notice(store):
    history, audit = store
    ticks = iter(range(0, 10_000, 2))  # every partial save is due: the next one meets the delete
    service = ChatService(
        FakeEngine(), history, audit, GenerationSettings(), clock=lambda: next(ticks)
    )
    updates = service.reply(TurnContext(ALICE), None, " ".join(["word"] * 40))
    for update in updates:
        if update.reply:
            history.delete(ALICE.key, update.conversation_id)  # another tab deletes it
            break
    last = list(updates)[-1]
    assert last.status == "stopped" and "deleted while the reply was being written" in last.notice
    assert history.list_conversations(ALICE.key) == []
    [record] = audit.query(type="chat.reply").records
    assert record.outcome == "stopped"
