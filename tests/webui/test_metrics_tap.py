"""Metrics built from the audit stream count each turn once, whether it was refused, finished,
failed or cut short by a crash, though a started turn writes two records."""

from __future__ import annotations

from collections.abc import Iterator

from core.identity import User
from model.engine import EngineError
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from model.types import GenerationStats, TextDelta
from core.audit import CHAT_REPLY, CHAT_REQUEST, AuditEvent, MemoryAuditSink
from tests.webui.fakes import MemoryHistory
from webui.chat_service import ChatService, TurnContext
from webui.metrics import Metrics
from webui.metrics_tap import MetricsAuditTap

ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))


def value(counter, **labels: str) -> float:
    return sum(
        s.value
        for s in counter.collect()[0].samples
        if s.name.endswith("_total") and s.labels == labels
    )


def turn(engine, message: str = "hello there") -> tuple[Metrics, MemoryAuditSink, list]:
    metrics, sink = Metrics(), MemoryAuditSink()
    service = ChatService(
        engine, MemoryHistory(), MetricsAuditTap(sink, metrics), GenerationSettings()
    )
    return metrics, sink, list(service.reply(TurnContext(ALICE), None, message))


def test_a_finished_turn_is_one_generation_though_it_writes_two_records():
    metrics, sink, updates = turn(FakeEngine())
    assert updates[-1].status == "complete"
    assert [(e.type, e.outcome) for e in sink.events] == [
        (CHAT_REQUEST, "started"),
        (CHAT_REPLY, "complete"),
    ]
    assert value(metrics.generations, finish_reason="stop") == 1
    assert value(metrics.generations, finish_reason="error") == 0
    assert value(metrics.tokens) == 4  # "You said: hello there"


def test_an_engine_refusal_is_a_refusal_not_a_generation():
    engine = FakeEngine(max_concurrent=1, max_queue=0)
    engine.gate.acquire()
    metrics, sink, updates = turn(engine)
    assert [u.status for u in updates] == ["refused"]
    assert [(e.type, e.outcome) for e in sink.events] == [(CHAT_REQUEST, "busy")]
    assert value(metrics.refusals, reason="chat:busy") == 1
    assert metrics.generations.collect()[0].samples == []


class FailingStream:
    """One word, then the engine fails."""

    def __init__(self) -> None:
        self.stats = GenerationStats(prompt_tokens=3, completion_tokens=1)

    def __iter__(self) -> Iterator[TextDelta]:
        yield TextDelta("You")
        raise EngineError("out of memory")

    def cancel(self) -> None:
        pass


class FailingEngine:
    def stream(self, request) -> FailingStream:
        return FailingStream()


def test_a_failed_reply_counts_an_engine_error_and_an_errored_generation():
    metrics, sink, updates = turn(FailingEngine())
    assert updates[-1].status == "error" and updates[-1].reply == "You"
    assert [(e.type, e.outcome) for e in sink.events] == [
        (CHAT_REQUEST, "started"),
        (CHAT_REPLY, "error"),
    ]
    assert value(metrics.errors, kind="engine") == 1
    assert value(metrics.generations, finish_reason="error") == 1


def test_a_reply_interrupted_by_a_dead_process_is_not_counted_as_a_generation_here():
    metrics = Metrics()
    sink = MemoryAuditSink()
    tap = MetricsAuditTap(sink, metrics)
    tap.record(AuditEvent(type=CHAT_REPLY, actor="a", target="c", outcome="interrupted"))
    assert [e.outcome for e in sink.events] == ["interrupted"]  # recorded all the same
    assert metrics.generations.collect()[0].samples == []
    assert metrics.errors.collect()[0].samples == []
