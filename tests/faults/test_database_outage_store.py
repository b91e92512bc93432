"""The store through a real PostgreSQL outage (behind a proxy the test cuts): a clear domain error,
writes held in order while it lasts, written with the audit chain intact once it is back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from core.audit import CHAT_REPLY, AuditEvent
from core.store_outage import StoreUnreachable
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import Database, create_database, migrate
from store.held_writes import HeldAuditSink, HeldWrites
from tests.backends import postgres_schema
from tests.faults.tcp_proxy import TcpProxy, tcp_proxy


@pytest.fixture
def outage() -> Iterator[tuple[TcpProxy, Database]]:
    with postgres_schema("outage") as schema, tcp_proxy("127.0.0.1", 5432) as proxy:
        url = (
            f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test"
            f"?options=-csearch_path%3D{schema}"
        )
        database = create_database(url)
        migrate(database)
        try:
            yield proxy, database
        finally:
            database.dispose()


def test_an_unreachable_database_is_one_domain_error_and_heals_without_restart(outage):
    proxy, database = outage
    history = ChatHistory(database, HeldAuditSink(AuditLog(database), HeldWrites(10)))
    proxy.cut()
    with pytest.raises(StoreUnreachable):
        history.list_conversations("iss|alice")
    proxy.restore()
    assert history.list_conversations("iss|alice") == []  # pooled connections were replaced


def test_writes_during_an_outage_are_held_in_order_and_written_when_it_is_back(outage, caplog):
    proxy, database = outage
    audit_log = AuditLog(database)
    held = HeldWrites(capacity=100)
    audit = HeldAuditSink(audit_log, held)
    history = ChatHistory(database, audit)
    conversation = history.create_conversation("iss|alice", "plans").id
    reply_id = history.start_turn("iss|alice", conversation, "what next?")

    proxy.cut()
    with caplog.at_level(logging.WARNING, "chat.store"):
        held.run(
            "reply",
            lambda: history.update_message(
                "iss|alice", conversation, reply_id, "the full answer", "complete"
            ),
        )
        for n in range(3):
            audit.record(AuditEvent(CHAT_REPLY, actor="iss|alice", target=str(n)))
    assert len(held) == 4 and held.flush() == 0  # still down: nothing written, nothing lost
    assert "holding writes" in caplog.text and "Traceback" not in caplog.text

    proxy.restore()
    assert held.flush() == 4 and len(held) == 0
    (_, reply) = history.get_conversation("iss|alice", conversation).messages
    assert (reply.content, reply.status) == ("the full answer", "complete")
    records = audit_log.query(type=CHAT_REPLY).records  # newest first
    assert [r.target for r in reversed(records)] == ["0", "1", "2"]  # in the order they were made
    assert audit_log.verify().ok


def test_past_its_capacity_a_write_is_lost_loudly_not_silently(caplog):
    held = HeldWrites(capacity=2)

    def down() -> None:
        raise StoreUnreachable("OperationalError")

    with caplog.at_level(logging.ERROR, "chat.store"):
        for what in ("first", "second", "third"):
            held.run(what, down)
    assert len(held) == 2 and held.dropped == 1
    assert "third lost" in caplog.text


def test_a_held_write_that_can_never_succeed_does_not_block_the_others():
    held, written = HeldWrites(capacity=10), []
    state = {"down": True}

    def write(value: str):
        def run() -> None:
            if state["down"]:
                raise StoreUnreachable("down")
            if value == "poison":
                raise ValueError("bad data")
            written.append(value)

        return run

    for value in ("a", "poison", "b"):
        held.run(value, write(value))
    state["down"] = False
    assert held.flush() == 3
    assert written == ["a", "b"] and len(held) == 0


def test_nothing_is_held_while_the_database_answers():
    held, written = HeldWrites(capacity=10), []
    held.run("x", lambda: written.append("x"))
    assert written == ["x"] and len(held) == 0
