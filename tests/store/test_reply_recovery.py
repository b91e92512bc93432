"""Replies a crash left "streaming" become "interrupted"; replies a live server is writing never do.

Each ChatHistory below stands for one server process (its live replies are its own), all sharing
one database and one audit trail, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.audit import CHAT_REPLY
from store.chat_history import ChatHistory
from store.reply_recovery import ReplyRecovery

ALICE = "https://idp.example|alice"
BOB = "https://idp.example|bob"
STALE = timedelta(seconds=60)


@pytest.fixture
def server(database, audit_log, clock):
    """A factory of server processes: (its ChatHistory, its ReplyRecovery)."""

    def start() -> tuple[ChatHistory, ReplyRecovery]:
        history = ChatHistory(database, audit_log, clock)
        return history, ReplyRecovery(database, audit_log, history.live_replies, STALE, clock)

    return start


def statuses(history: ChatHistory, owner: str, conversation_id: str) -> list[tuple[str, str]]:
    messages = history.get_conversation(owner, conversation_id).messages
    return [(m.content, m.status) for m in messages if m.role == "assistant"]


def test_start_up_interrupts_only_replies_whose_last_save_is_stale(server, clock, audit_log):
    crashed, _ = server()
    crashed_chat = crashed.create_conversation(ALICE, "crashed")
    reply = crashed.start_turn(ALICE, crashed_chat.id, "tell me a story")
    crashed.update_message(ALICE, crashed_chat.id, reply, "Once upon", "streaming")
    clock.advance(seconds=61)  # the server died; a minute later another one starts
    live, _ = server()
    live_chat = live.create_conversation(BOB, "live")
    live.start_turn(BOB, live_chat.id, "and me?")  # saved just now by a running server

    restarted, recovery = server()
    interrupted = recovery.interrupt_stale()

    assert [(r.owner_key, r.conversation_id, r.chars) for r in interrupted] == [
        (ALICE, crashed_chat.id, len("Once upon"))
    ]
    assert statuses(restarted, ALICE, crashed_chat.id) == [("Once upon", "interrupted")]
    assert statuses(restarted, BOB, live_chat.id) == [("", "streaming")]
    [record] = audit_log.query(type=CHAT_REPLY).records
    assert (record.actor, record.target, record.outcome) == (ALICE, crashed_chat.id, "interrupted")
    assert recovery.interrupt_stale() == []  # once only: no second record
    assert audit_log.query(type=CHAT_REPLY).total == 1
    assert audit_log.verify().ok


def test_a_silent_live_reply_is_renewed_by_its_server_and_never_interrupted(server, clock):
    # Waiting in the engine's queue or prefilling a long prompt: no token, so no partial save.
    writer, writer_recovery = server()
    conversation = writer.create_conversation(ALICE)
    reply = writer.start_turn(ALICE, conversation.id, "a long prompt")
    _, other_replica = server()

    for _ in range(12):  # three minutes, each replica checking every quarter of STALE
        clock.advance(seconds=15)
        writer_recovery.run_once()
        assert other_replica.run_once() == 0
    assert statuses(writer, ALICE, conversation.id) == [("", "streaming")]

    writer.update_message(ALICE, conversation.id, reply, "done", "complete")
    assert writer.live_replies() == [] and writer_recovery.renew() == 0


def test_when_its_server_dies_another_replica_interrupts_it_after_the_lease(server, clock):
    writer, writer_recovery = server()
    conversation = writer.create_conversation(ALICE)
    writer.start_turn(ALICE, conversation.id, "hello")
    _, other_replica = server()
    clock.advance(seconds=15)
    writer_recovery.run_once()

    # The writer is gone: nothing renews the lease any more.
    clock.advance(seconds=59)
    assert other_replica.run_once() == 0  # 59 s since the last renewal: still within the lease
    clock.advance(seconds=2)
    assert other_replica.run_once() == 1
    assert statuses(writer, ALICE, conversation.id) == [("", "interrupted")]


def test_start_recovers_before_it_returns(server, clock):
    crashed, _ = server()
    conversation = crashed.create_conversation(ALICE)
    crashed.start_turn(ALICE, conversation.id, "hello")
    clock.advance(minutes=5)

    _, recovery = server()
    recovery.start()
    try:
        # Already done when start() returns, i.e. before the app serves its first request.
        assert statuses(crashed, ALICE, conversation.id) == [("", "interrupted")]
    finally:
        recovery.stop()
    assert recovery.check_every == STALE / 4
