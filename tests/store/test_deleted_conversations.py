"""Deleting with an undo window, on SQLite and PostgreSQL: a deleted conversation is hidden from its
owner everywhere at once, its owner (and only its owner) can restore it within the window, and after
the window it is purged with its messages, at the owner's next delete or by the retention sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.audit import (
    CONVERSATION_DELETED,
    CONVERSATION_RESTORED,
    NOT_FOUND,
    RETENTION_PURGED,
    MemoryAuditSink,
)
from core.history import UNDO_WINDOW
from store.chat_history import ChatHistory, ConversationNotFound
from store.retention_job import RetentionJob
from store.schema import ConversationRow, MessageRow
from store.settings import RetentionSettings
from store.sql_session_store import SqlSessionStore

ALICE = "https://idp.example|alice"
BOB = "https://idp.example|bob"
WINDOW_SECONDS = UNDO_WINDOW.total_seconds()

# Everything the owner can do with an id, each of which must treat a deleted one as missing.
USES = {
    "get": lambda h, cid: h.get_conversation(ALICE, cid),
    "append": lambda h, cid: h.append_message(ALICE, cid, "user", "more"),
    "start_turn": lambda h, cid: h.start_turn(ALICE, cid, "another question"),
    "rename": lambda h, cid: h.rename(ALICE, cid, "renamed"),
    "delete again": lambda h, cid: h.delete(ALICE, cid),
    "export_markdown": lambda h, cid: h.export_markdown(ALICE, cid),
    "export_json": lambda h, cid: h.export_json(ALICE, cid),
}


@pytest.fixture
def plans(history):
    conversation = history.create_conversation(ALICE, "Merger plans")
    history.append_message(ALICE, conversation.id, "user", "confidential merger details")
    history.append_message(ALICE, conversation.id, "assistant", "noted")
    return conversation


def rows(database, table) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_a_deleted_conversation_is_gone_from_its_owners_list_and_search(history, plans):
    kept = history.create_conversation(ALICE, "Lunch menu")

    deleted = history.delete(ALICE, plans.id)

    assert (deleted.id, deleted.title) == (plans.id, "Merger plans")
    assert [c.id for c in history.list_conversations(ALICE)] == [kept.id]
    assert history.search(ALICE, "merger") == []
    assert history.search(ALICE, "Merger plans") == []


@pytest.mark.parametrize("use", USES)
def test_a_deleted_id_behaves_like_a_missing_one(history, plans, audit_sink, use):
    history.delete(ALICE, plans.id)

    with pytest.raises(ConversationNotFound):
        USES[use](history, plans.id)

    attempt = audit_sink.of_type(NOT_FOUND)[-1]
    assert (attempt.actor, attempt.target) == (ALICE, plans.id)


def test_a_reply_streaming_into_a_deleted_conversation_stops_being_saved(history, plans):
    reply_id = history.start_turn(ALICE, plans.id, "summarise it")
    history.update_message(ALICE, plans.id, reply_id, "The merger", "streaming")

    history.delete(ALICE, plans.id)

    with pytest.raises(ConversationNotFound):
        history.update_message(ALICE, plans.id, reply_id, "The merger is planned", "streaming")
    with pytest.raises(ConversationNotFound):
        history.update_message(ALICE, plans.id, reply_id, "The merger is planned", "complete")
    assert reply_id not in history.live_replies()  # the final save ends the lease either way
    history.restore(ALICE, plans.id)
    assert history.get_conversation(ALICE, plans.id).messages[-1].content == "The merger"


def test_undo_within_the_window_brings_it_back_with_its_messages(history, plans, clock):
    history.delete(ALICE, plans.id)
    clock.advance(seconds=WINDOW_SECONDS - 1)

    restored = history.restore(ALICE, plans.id)

    assert (restored.id, restored.title) == (plans.id, "Merger plans")
    reopened = history.get_conversation(ALICE, plans.id)
    assert [m.content for m in reopened.messages] == ["confidential merger details", "noted"]
    assert [c.id for c in history.list_conversations(ALICE)] == [plans.id]
    history.append_message(ALICE, plans.id, "user", "and one more thing")  # usable again


def test_undo_after_the_window_is_refused_as_not_found(history, plans, clock, audit_sink):
    history.delete(ALICE, plans.id)
    clock.advance(seconds=WINDOW_SECONDS)

    with pytest.raises(ConversationNotFound):
        history.restore(ALICE, plans.id)

    assert history.list_conversations(ALICE) == []
    refused = audit_sink.of_type(NOT_FOUND)[-1]
    assert (refused.actor, refused.target) == (ALICE, plans.id)
    assert refused.details["action"] == "restore"


def test_restoring_what_was_never_deleted_is_not_found(history, plans):
    with pytest.raises(ConversationNotFound):
        history.restore(ALICE, plans.id)


def test_another_user_can_neither_restore_nor_see_nor_delete_a_deleted_conversation(
    history, plans, audit_sink
):
    history.delete(ALICE, plans.id)

    for attempt in (
        lambda: history.restore(BOB, plans.id),
        lambda: history.delete(BOB, plans.id),
        lambda: history.get_conversation(BOB, plans.id),
    ):
        with pytest.raises(ConversationNotFound):
            attempt()

    assert [(e.actor, e.target) for e in audit_sink.of_type(NOT_FOUND)] == [(BOB, plans.id)] * 3
    assert history.list_conversations(BOB) == []
    # Still Alice's to restore: Bob's attempts changed nothing.
    assert history.restore(ALICE, plans.id).id == plans.id


def test_delete_and_restore_are_audited_without_the_title(history, plans, audit_sink):
    history.delete(ALICE, plans.id)
    history.restore(ALICE, plans.id)

    deleted = audit_sink.of_type(CONVERSATION_DELETED)
    restored = audit_sink.of_type(CONVERSATION_RESTORED)
    assert [(e.actor, e.target, e.outcome) for e in deleted] == [(ALICE, plans.id, "deleted")]
    assert [(e.actor, e.target, e.outcome) for e in restored] == [(ALICE, plans.id, "restored")]
    assert "Merger" not in repr(deleted + restored)


def test_the_next_delete_purges_the_owners_expired_deleted_conversations(
    history, plans, clock, database, audit_sink
):
    bobs = history.create_conversation(BOB, "Bob's notes")
    history.append_message(BOB, bobs.id, "user", "bob's words")
    history.delete(BOB, bobs.id)
    history.delete(ALICE, plans.id)
    clock.advance(seconds=WINDOW_SECONDS + 1)
    other = history.create_conversation(ALICE, "Other")

    history.delete(ALICE, other.id)

    with database.read() as session:
        left = set(session.scalars(select(ConversationRow.id)))
        messages = set(session.scalars(select(MessageRow.content)))
    # Alice's expired one is gone with its messages; Bob's waits for the sweep; the new one waits
    # for its own window.
    assert left == {bobs.id, other.id}
    assert messages == {"bob's words"}
    event = audit_sink.of_type(CONVERSATION_DELETED)[-1]
    assert event.details["purged_conversations"] == 1
    assert event.details["purged_messages"] == 2


def test_the_sweep_purges_every_owners_deleted_conversations_past_the_window(
    history, plans, clock, database, audit_sink
):
    bobs = history.create_conversation(BOB, "Bob's notes")
    history.append_message(BOB, bobs.id, "user", "bob's words")
    history.delete(BOB, bobs.id)
    history.delete(ALICE, plans.id)
    clock.advance(seconds=WINDOW_SECONDS - 1)
    recent = history.create_conversation(ALICE, "Recent")
    history.delete(ALICE, recent.id)
    kept = history.create_conversation(ALICE, "Kept")

    assert history.purge_deleted() == 0  # nothing is past its window yet
    clock.advance(seconds=1)
    assert history.purge_deleted() == 2

    with database.read() as session:
        assert set(session.scalars(select(ConversationRow.id))) == {recent.id, kept.id}
    assert rows(database, MessageRow) == 0
    purge = audit_sink.of_type(RETENTION_PURGED)[-1]
    assert purge.details["scope"] == "deleted_conversations"
    assert purge.details["conversations"] == 2 and purge.details["messages"] == 3
    # The one deleted later is still restorable within its own window.
    assert history.restore(ALICE, recent.id).id == recent.id


def test_the_window_is_the_stores_setting(database, clock):
    history = ChatHistory(database, MemoryAuditSink(), clock, undo_window=timedelta(seconds=2))
    first = history.create_conversation(ALICE, "First")
    history.delete(ALICE, first.id)
    clock.advance(seconds=2)

    assert history.undo_window == timedelta(seconds=2)
    with pytest.raises(ConversationNotFound):
        history.restore(ALICE, first.id)
    assert history.purge_deleted() == 1


def test_the_retention_job_runs_the_sweep_of_deleted_conversations(database):
    clock_now = [datetime(2026, 1, 15, 9, 0, tzinfo=UTC)]
    history = ChatHistory(database, MemoryAuditSink(), lambda: clock_now[0])
    gone = history.create_conversation(ALICE, "Gone")
    history.delete(ALICE, gone.id)
    clock_now[0] += UNDO_WINDOW
    job = RetentionJob(
        RetentionSettings(history_days=0, audit_days=0),
        history,
        MemoryAuditLog(),
        SqlSessionStore(database),
    )

    assert job.purge_deleted() == 1
    assert job.run_once().deleted_conversations == 0
    assert rows(database, ConversationRow) == 0


class MemoryAuditLog:
    """The audit trail's purge, for a job that keeps audit records forever."""

    def purge(self, audit_days: int) -> int:
        return 0
