"""Conversations as their owner sees them: create, continue, list, search, rename, delete, export."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import text

from store.chat_history import ChatHistory, ConversationNotFound
from store.database import create_database

ALICE = "https://idp.example|alice"


def test_conversation_ids_are_random_hex_not_sequential(history):
    ids = [history.create_conversation(ALICE, "t").id for _ in range(3)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)  # random, so not guessable from one's own
    assert len(set(ids)) == 3


def test_messages_come_back_in_order_with_their_status(history, clock):
    conversation = history.create_conversation(ALICE, "Trip")
    history.append_message(ALICE, conversation.id, "user", "你好，帮我规划行程")
    clock.advance(seconds=5)
    history.append_message(ALICE, conversation.id, "assistant", "好的，第一天……", status="stopped")
    history.append_message(ALICE, conversation.id, "assistant", "", status="error")

    loaded = history.get_conversation(ALICE, conversation.id)

    assert [(m.role, m.content, m.status) for m in loaded.messages] == [
        ("user", "你好，帮我规划行程", "complete"),
        ("assistant", "好的，第一天……", "stopped"),
        ("assistant", "", "error"),
    ]
    assert loaded.messages[1].created_at == clock.now
    assert loaded.updated_at == clock.now


def test_history_survives_a_restart(database_url, database, audit_sink, clock):
    conversation = ChatHistory(database, audit_sink, clock).create_conversation(ALICE, "Keep")
    ChatHistory(database, audit_sink, clock).append_message(ALICE, conversation.id, "user", "hi")
    database.dispose()

    reopened = create_database(database_url)
    try:
        loaded = ChatHistory(reopened, audit_sink, clock).get_conversation(ALICE, conversation.id)
    finally:
        reopened.dispose()
    assert loaded.title == "Keep"
    assert [m.content for m in loaded.messages] == ["hi"]


def test_list_is_newest_first_by_last_activity(history, clock):
    first = history.create_conversation(ALICE, "first")
    clock.advance(minutes=1)
    second = history.create_conversation(ALICE, "second")
    clock.advance(minutes=1)
    history.append_message(ALICE, first.id, "user", "back to the first one")

    titles = [c.title for c in history.list_conversations(ALICE)]

    assert titles == ["first", "second"]
    assert [c.id for c in history.list_conversations(ALICE, limit=1, offset=1)] == [second.id]


def test_search_covers_titles_and_message_text_case_insensitively(history):
    by_title = history.create_conversation(ALICE, "Quarterly REPORT")
    by_message = history.create_conversation(ALICE, "misc")
    history.append_message(ALICE, by_message.id, "assistant", "The report is attached")
    chinese = history.create_conversation(ALICE, "杂项")
    history.append_message(ALICE, chinese.id, "user", "请总结季度报告")
    history.create_conversation(ALICE, "unrelated")

    assert {c.id for c in history.search(ALICE, "report")} == {by_title.id, by_message.id}
    assert [c.id for c in history.search(ALICE, "季度报告")] == [chinese.id]


@pytest.mark.parametrize("query", ["%", "_", "50%", "a_b", "\\"])
def test_search_treats_wildcards_literally(history, query):
    literal = history.create_conversation(ALICE, "growth 50% in a_b test \\ done")
    history.create_conversation(ALICE, "growth 500 in axb test done")

    assert [c.id for c in history.search(ALICE, query)] == [literal.id]


def test_rename_cleans_the_title(history):
    conversation = history.create_conversation(ALICE)
    history.rename(ALICE, conversation.id, "  New\nname\twith   spaces ")
    assert history.get_conversation(ALICE, conversation.id).title == "New name with spaces"
    history.rename(ALICE, conversation.id, "   ")
    assert history.get_conversation(ALICE, conversation.id).title == "New conversation"


def test_delete_removes_the_conversation_and_its_messages(history, database, clock):
    conversation = history.create_conversation(ALICE, "bye")
    history.append_message(ALICE, conversation.id, "user", "secret plans")

    history.delete(ALICE, conversation.id)

    with pytest.raises(ConversationNotFound):
        history.get_conversation(ALICE, conversation.id)
    assert history.search(ALICE, "secret plans") == []
    # Hidden at once; purged for good once the undo window is over.
    clock.advance(seconds=history.undo_window.total_seconds())
    assert history.purge_deleted() == 1
    with database.read() as session:
        left = session.execute(text("SELECT count(*) FROM messages")).scalar_one()
    assert left == 0


def test_exports_contain_the_whole_conversation(history):
    conversation = history.create_conversation(ALICE, "导出测试")
    history.append_message(ALICE, conversation.id, "user", "第一个问题")
    history.append_message(ALICE, conversation.id, "assistant", "部分回答", status="stopped")

    markdown = history.export_markdown(ALICE, conversation.id)
    document = json.loads(history.export_json(ALICE, conversation.id))

    assert markdown.startswith("# 导出测试\n")
    assert "## User, " in markdown and "第一个问题" in markdown
    assert "## Assistant (stopped), " in markdown and "部分回答" in markdown
    assert document["id"] == conversation.id
    assert [(m["role"], m["content"], m["status"]) for m in document["messages"]] == [
        ("user", "第一个问题", "complete"),
        ("assistant", "部分回答", "stopped"),
    ]


def test_bad_role_or_status_is_refused(history):
    conversation = history.create_conversation(ALICE)
    with pytest.raises(ValueError, match="role"):
        history.append_message(ALICE, conversation.id, "admin", "x")
    with pytest.raises(ValueError, match="status"):
        history.append_message(ALICE, conversation.id, "user", "x", status="done")
    assert history.get_conversation(ALICE, conversation.id).messages == ()


def test_a_turn_starts_with_the_question_and_an_empty_streaming_reply(history, clock):
    conversation = history.create_conversation(ALICE, "Durable")
    reply_id = history.start_turn(ALICE, conversation.id, "写一首诗")

    loaded = history.get_conversation(ALICE, conversation.id)
    assert [(m.role, m.content, m.status) for m in loaded.messages] == [
        ("user", "写一首诗", "complete"),
        ("assistant", "", "streaming"),
    ]
    assert history.live_replies() == [reply_id]

    clock.advance(seconds=3)
    history.update_message(ALICE, conversation.id, reply_id, "床前", "streaming")
    assert history.get_conversation(ALICE, conversation.id).messages[1].content == "床前"
    assert history.live_replies() == [reply_id]  # still being written

    history.update_message(ALICE, conversation.id, reply_id, "床前明月光", "complete")
    loaded = history.get_conversation(ALICE, conversation.id)
    assert [(m.role, m.content, m.status) for m in loaded.messages] == [
        ("user", "写一首诗", "complete"),
        ("assistant", "床前明月光", "complete"),
    ]
    assert loaded.updated_at == clock.now  # a save is activity: the list order follows it
    assert history.live_replies() == []


def test_update_refuses_an_unknown_status_and_a_message_of_another_conversation(history):
    first = history.create_conversation(ALICE)
    reply_id = history.start_turn(ALICE, first.id, "one")
    second = history.create_conversation(ALICE)
    with pytest.raises(ValueError, match="status"):
        history.update_message(ALICE, first.id, reply_id, "x", "done")
    with pytest.raises(ConversationNotFound):
        history.update_message(ALICE, second.id, reply_id, "moved", "complete")
    assert history.get_conversation(ALICE, first.id).messages[1].content == ""
    assert history.live_replies() == []  # a final status ends the lease even when refused
