"""Object-level authorization: user B using user A's conversation id gets "not found", same as a
made-up id, nothing of A's leaks or changes, and the attempt is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.audit import NOT_FOUND
from store.chat_history import ChatHistory, ConversationNotFound

ALICE = "https://idp.example|alice"
BOB = "https://idp.example|bob"

ATTEMPTS = {
    "get": lambda h, cid: h.get_conversation(BOB, cid),
    "append": lambda h, cid: h.append_message(BOB, cid, "user", "injected"),
    "start_turn": lambda h, cid: h.start_turn(BOB, cid, "injected"),
    # Alice's first message has id 1 in the fresh database.
    "update": lambda h, cid: h.update_message(BOB, cid, 1, "overwritten", "complete"),
    "rename": lambda h, cid: h.rename(BOB, cid, "pwned"),
    "delete": lambda h, cid: h.delete(BOB, cid),
    "export_markdown": lambda h, cid: h.export_markdown(BOB, cid),
    "export_json": lambda h, cid: h.export_json(BOB, cid),
}


@pytest.fixture
def alices(history):
    conversation = history.create_conversation(ALICE, "Alice's plans")
    history.append_message(ALICE, conversation.id, "user", "confidential merger details")
    return conversation


@pytest.mark.parametrize("action", ATTEMPTS)
def test_another_users_id_is_not_found_and_audited(history, audit_sink, alices, action):
    with pytest.raises(ConversationNotFound) as caught:
        ATTEMPTS[action](history, alices.id)

    assert str(caught.value) == "conversation not found"
    events = audit_sink.of_type(NOT_FOUND)
    assert len(events) == 1
    assert events[0].actor == BOB
    assert events[0].target == alices.id
    # Alice's conversation is untouched.
    mine = history.get_conversation(ALICE, alices.id)
    assert mine.title == "Alice's plans"
    assert [m.content for m in mine.messages] == ["confidential merger details"]


@pytest.mark.parametrize("action", ATTEMPTS)
def test_a_foreign_id_and_a_missing_id_look_the_same(history, alices, action):
    with pytest.raises(ConversationNotFound) as foreign:
        ATTEMPTS[action](history, alices.id)
    with pytest.raises(ConversationNotFound) as missing:
        ATTEMPTS[action](history, "0" * 32)
    assert str(foreign.value) == str(missing.value)


def test_listing_and_search_show_only_the_callers_conversations(history, alices):
    bobs = history.create_conversation(BOB, "Bob's plans")

    assert [c.id for c in history.list_conversations(BOB)] == [bobs.id]
    assert history.search(BOB, "merger") == []
    assert history.search(BOB, "plans")[0].id == bobs.id
    assert [c.id for c in history.search(ALICE, "plans")] == [alices.id]


def test_sql_like_input_in_an_id_is_just_not_found(history, alices, audit_sink):
    with pytest.raises(ConversationNotFound):
        history.get_conversation(BOB, f"{alices.id}' OR '1'='1")
    with pytest.raises(ConversationNotFound):
        history.get_conversation(BOB, "%")
    assert len(audit_sink.of_type(NOT_FOUND)) == 2


def test_attempts_land_in_the_sql_audit_trail(database, clock, audit_log):
    history = ChatHistory(database, audit_log, clock)
    conversation = history.create_conversation(ALICE, "mine")

    with pytest.raises(ConversationNotFound):
        history.get_conversation(BOB, conversation.id)

    [record] = audit_log.query(type=NOT_FOUND).records
    assert (record.actor, record.target) == (BOB, conversation.id)
    assert audit_log.verify().ok


def test_a_foreign_message_id_cannot_be_updated_through_ones_own_conversation(
    history, alices, database
):
    with database.read() as session:
        [message_id] = session.execute(text("SELECT id FROM messages")).scalars().all()
    assert message_id == 1  # the id ATTEMPTS["update"] aims at
    bobs = history.create_conversation(BOB, "Bob's plans")

    with pytest.raises(ConversationNotFound):
        history.update_message(BOB, bobs.id, message_id, "overwritten", "complete")

    mine = history.get_conversation(ALICE, alices.id)
    assert [(m.content, m.status) for m in mine.messages] == [
        ("confidential merger details", "complete")
    ]
