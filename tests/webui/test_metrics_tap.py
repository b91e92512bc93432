"""Each chat turn reaches the metrics once, from ChatService with the engine's own final stats,
whether it finished, was stopped, failed or was refused; the audit tap counts only logins and
refusals, by event type, and never reads a turn back out of the audit trail."""

from __future__ import annotations

from collections.abc import Iterator

from core.audit import (
    ACCESS_DENIED,
    CHAT_REPLY,
    CHAT_REQUEST,
    LOGIN_REFUSED,
    LOGIN_SUCCESS,
    AuditEvent,
    MemoryAuditSink,
)
from core.identity import User
from model.engine import EngineError
from model.fake_engine import FakeEngine, FakeStream
from model.settings import GenerationSettings
from model.types import GenerationRequest, GenerationStats, TextDelta
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


class RecordingObserver:
    def __init__(self) -> None:
        self.turns: list[tuple[GenerationStats, str]] = []
        self.refusals: list[str] = []

    def observe_turn(self, stats: GenerationStats, outcome: str) -> None:
        self.turns.append((stats, outcome))

    def record_refusal(self, reason: str) -> None:
        self.refusals.append(reason)


class RecordingEngine(FakeEngine):
    """The echoing fake, keeping every stream it hands out."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.streams: list[FakeStream] = []

    def stream(self, request: GenerationRequest) -> FakeStream:
        self.streams.append(super().stream(request))
        return self.streams[-1]


def service(engine, observer) -> tuple[ChatService, MemoryAuditSink]:
    sink = MemoryAuditSink()
    chat = ChatService(engine, MemoryHistory(), sink, GenerationSettings(), observer=observer)
    return chat, sink


def test_a_finished_turn_is_one_generation_with_the_engines_stats():
    metrics, engine = Metrics(), RecordingEngine()
    chat, sink = service(engine, metrics)
    updates = list(chat.reply(TurnContext(ALICE), None, "hello there"))
    assert updates[-1].status == "complete"
    assert updates[-1].stats is engine.streams[0].final
    assert [(e.type, e.outcome) for e in sink.events] == [
        (CHAT_REQUEST, "started"),
        (CHAT_REPLY, "complete"),
    ]
    assert sink.events[-1].details["finish_reason"] == "stop"
    assert value(metrics.generations, finish_reason="stop") == 1
    assert value(metrics.generations, finish_reason="error") == 0
    assert value(metrics.tokens) == 4  # "You said: hello there"


def test_a_stopped_turn_is_observed_once_with_the_stats_the_engine_ended_it_with():
    observer, engine = RecordingObserver(), RecordingEngine()
    chat, sink = service(engine, observer)
    updates = chat.reply(TurnContext(ALICE), None, "one two three four five six seven")
    while next(updates).reply == "":
        pass
    updates.close()  # the stop button
    final = engine.streams[0].final
    assert final is not None and final.finish_reason == "cancelled"
    assert observer.turns == [(final, "stopped")]
    assert observer.turns[0][0] is final  # the engine's own object, not a copy rebuilt from it
    assert (sink.events[-1].outcome, sink.events[-1].details["finish_reason"]) == (
        "stopped",
        "cancelled",
    )
    assert engine.load.running == 0


def test_an_engine_refusal_is_a_refusal_not_a_generation():
    metrics, engine = Metrics(), FakeEngine(max_concurrent=1, max_queue=0)
    engine.gate.acquire()
    chat, sink = service(engine, metrics)
    updates = list(chat.reply(TurnContext(ALICE), None, "hello there"))
    assert [u.status for u in updates] == ["refused"]
    assert [(e.type, e.outcome) for e in sink.events] == [(CHAT_REQUEST, "busy")]
    assert value(metrics.refusals, reason="chat:busy") == 1
    assert metrics.generations.collect()[0].samples == []


class FailingStream:
    """One word, then the engine fails; the stats are final as the failure is raised."""

    def __init__(self) -> None:
        self.final: GenerationStats | None = None

    def __iter__(self) -> Iterator[TextDelta]:
        try:
            yield TextDelta("You")
            raise EngineError("out of memory")
        finally:
            self.final = GenerationStats(
                prompt_tokens=3, completion_tokens=1, finish_reason="error"
            )

    def cancel(self) -> None:
        pass


class FailingEngine:
    def __init__(self) -> None:
        self.streams: list[FailingStream] = []

    def stream(self, request) -> FailingStream:
        self.streams.append(FailingStream())
        return self.streams[-1]


def test_a_failed_reply_counts_an_engine_error_and_an_errored_generation_once():
    metrics, engine = Metrics(), FailingEngine()
    chat, sink = service(engine, metrics)
    updates = list(chat.reply(TurnContext(ALICE), None, "hello there"))
    assert updates[-1].status == "error" and updates[-1].reply == "You"
    assert [(e.type, e.outcome) for e in sink.events] == [
        (CHAT_REQUEST, "started"),
        (CHAT_REPLY, "error"),
    ]
    assert value(metrics.errors, kind="engine") == 1
    assert value(metrics.generations, finish_reason="error") == 1
    assert value(metrics.tokens) == 1


def test_the_tap_counts_logins_and_refusals_and_never_reads_a_turn_from_the_trail():
    metrics, sink = Metrics(), MemoryAuditSink()
    tap = MetricsAuditTap(sink, metrics)
    events = [
        AuditEvent(type=LOGIN_SUCCESS, actor="a"),
        AuditEvent(type=LOGIN_REFUSED, actor="b", outcome="not_allowed"),
        AuditEvent(type=ACCESS_DENIED, actor="c"),
        AuditEvent(type=CHAT_REQUEST, actor="a", target="c1", outcome="busy"),
        AuditEvent(type=CHAT_REPLY, actor="a", target="c1", outcome="complete"),
        AuditEvent(type=CHAT_REPLY, actor="a", target="c2", outcome="interrupted"),
    ]
    for event in events:
        tap.record(event)
    assert sink.events == events  # recorded all the same
    assert value(metrics.logins, outcome="success") == 1
    assert value(metrics.logins, outcome="refused") == 1
    assert value(metrics.refusals, reason="login:not_allowed") == 1
    assert value(metrics.refusals, reason=ACCESS_DENIED) == 1
    assert value(metrics.refusals, reason="chat:busy") == 0  # ChatService counts those
    assert metrics.generations.collect()[0].samples == []
    assert metrics.errors.collect()[0].samples == []
