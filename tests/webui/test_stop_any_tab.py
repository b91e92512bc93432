"""Stop pressed in another tab (or by the same person while a script's reply runs): the user's
running reply ends within one more token, saved and audited as stopped, exactly as a Stop in its
own tab; a Stop pressed before the turn, or by someone else, never stops it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from core.audit import CHAT_REPLY
from core.identity import User
from guards.settings import LimitSettings
from guards.stop_requests import StopRequests
from guards.user_concurrency import UserConcurrency
from model.fake_engine import FakeEngine
from model.settings import GenerationSettings
from model.types import GenerationStats, TextDelta
from tests.backends import REDIS_URL, redis_namespace
from tests.live_server import free_port
from tests.webui.line_engine import LineEngine
from webui.chat_service import ChatService, ReplyUpdate, TurnContext, TurnGuards

ALICE = User(issuer="https://idp.test", subject="alice", email=None, groups=("staff",))
BOB = User(issuer="https://idp.test", subject="bob", email=None, groups=("staff",))
LONG = " ".join(f"w{i}" for i in range(200))  # the fake engine echoes it word by word


@pytest.fixture
def store(sql_store):
    return sql_store


@pytest.fixture(params=["memory", "redis"])
def limits(request) -> Iterator[LimitSettings]:
    if request.param == "memory":
        yield LimitSettings(storage="memory://")
        return
    with redis_namespace("stop-tab") as prefix:
        yield LimitSettings(storage=REDIS_URL, key_prefix=prefix)


def service_for(store, limits: LimitSettings, engine=None) -> ChatService:
    """One replica's chat service; two built from the same Redis settings are two replicas."""
    history, audit = store
    guards = TurnGuards(
        concurrency=UserConcurrency.from_settings(limits),
        stops=StopRequests.from_settings(limits),
    )
    return ChatService(
        engine or FakeEngine(delay=0.002), history, audit, GenerationSettings(), guards
    )


def replicas(store, limits: LimitSettings) -> tuple[ChatService, ChatService]:
    """The service of the tab that runs the reply and of the tab that presses Stop."""
    running = service_for(store, limits)
    if limits.storage == "memory://":
        return running, running  # one process: every tab meets the same service
    return running, service_for(store, limits)


def until_words(updates: Iterator[ReplyUpdate], count: int) -> ReplyUpdate:
    for update in updates:
        if len(update.reply.split()) >= count:
            return update
    raise AssertionError("the reply ended before it had that many words")


def saved_reply(store, conversation_id: str):
    history, _ = store
    return history.get_conversation(ALICE.key, conversation_id).messages[-1]


def reply_outcomes(store) -> list[str | None]:
    _, audit = store
    return [r.outcome for r in audit.query(type=CHAT_REPLY).records]


@pytest.mark.parametrize("report_queue", [True, False], ids=["page", "script"])
def test_stop_from_another_tab_ends_the_reply_within_one_more_token(store, limits, report_queue):
    tab_one, tab_two = replicas(store, limits)
    updates = tab_one.reply(TurnContext(ALICE), None, LONG, report_queue=report_queue)
    shown = until_words(updates, 5)

    assert tab_two.stop(ALICE.key) is True
    # The next update is the end: the stopped reply, with no word that came after the Stop.
    end = next(updates)
    assert end.status == "stopped"
    assert end.reply == shown.reply
    assert end.stats.finish_reason == "cancelled"
    assert list(updates) == []
    saved = saved_reply(store, shown.conversation_id)
    assert (saved.status, saved.content) == ("stopped", shown.reply)
    assert reply_outcomes(store) == ["stopped"]
    assert not tab_two.reply_running(ALICE.key)  # its one-at-a-time lock was released


class AheadEngine:
    """An engine that has generated the whole reply before the reader takes its first word (a
    remote server, or tokens buffered on their way): its stream ends "stop", never "cancelled"."""

    def __init__(self) -> None:
        self.fake = FakeEngine()

    def stream(self, request):
        inner = self.fake.stream(request)
        ahead = list(inner)
        return AheadStream(inner, ahead)


class AheadStream:
    def __init__(self, inner, deltas) -> None:
        self._inner, self._deltas = inner, deltas

    @property
    def final(self):
        return self._inner.final

    def __iter__(self):
        return iter(self._deltas)

    def cancel(self) -> None:
        self._inner.cancel()

    def queue_place(self):
        return None


def test_a_reply_generated_ahead_of_the_reader_is_still_saved_stopped_as_shown(store):
    service = service_for(store, LimitSettings(storage="memory://"), engine=AheadEngine())
    updates = service.reply(TurnContext(ALICE), None, LONG)
    shown = until_words(updates, 4)
    service.stop(ALICE.key)
    end = next(updates)
    assert (end.status, end.reply) == ("stopped", shown.reply)
    assert end.stats.finish_reason == "stop"  # the engine had finished; the reader had not
    assert list(updates) == []
    saved = saved_reply(store, shown.conversation_id)
    assert (saved.status, saved.content) == ("stopped", shown.reply)


def test_a_stop_pressed_before_the_turn_started_does_not_stop_it(store, limits):
    tab_one, tab_two = replicas(store, limits)
    tab_two.stop(ALICE.key)  # e.g. a Stop that arrived after the previous reply had ended
    updates = list(tab_one.reply(TurnContext(ALICE), None, "hello there", report_queue=True))
    assert updates[-1].status == "complete"
    assert updates[-1].reply == "You said: hello there"
    assert reply_outcomes(store) == ["complete"]


def test_another_users_stop_does_not_stop_the_reply(store, limits):
    tab_one, bobs_tab = replicas(store, limits)
    updates = tab_one.reply(TurnContext(ALICE), None, "one two three four five six", True)
    until_words(updates, 3)
    assert bobs_tab.stop(BOB.key) is True
    rest = list(updates)
    assert rest[-1].status == "complete"
    assert rest[-1].reply == "You said: one two three four five six"


def test_a_reply_waiting_in_line_is_stopped_from_another_tab_before_it_runs(store):
    fake = FakeEngine(max_concurrent=1)
    fake.gate.acquire()  # someone else's reply holds the only slot
    limits = LimitSettings(storage="memory://")
    service = service_for(store, limits, engine=LineEngine(fake))
    updates = service.reply(TurnContext(ALICE), None, "hello there", report_queue=True)
    for update in updates:
        if update.status == "queued":
            break
    assert service.reply_running(ALICE.key)  # what another tab sees: it offers Stop

    service.stop(ALICE.key)
    rest = list(updates)  # ends without the slot coming free
    assert [u.status for u in rest][-1] == "stopped"
    assert rest[-1].reply == ""
    assert fake.gate.waiting == 0 and fake.gate.running == 1  # only the other reply runs
    assert reply_outcomes(store) == ["stopped"]
    fake.gate.release()


def test_with_shared_state_unreachable_stop_still_ends_the_tabs_own_reply(store):
    down = LimitSettings(storage=f"redis://127.0.0.1:{free_port()}/0", key_prefix="down")
    history, audit = store
    guards = TurnGuards(stops=StopRequests.from_settings(down))  # locks in memory, stops down
    service = ChatService(FakeEngine(delay=0.002), history, audit, GenerationSettings(), guards)
    updates = service.reply(TurnContext(ALICE), None, LONG, report_queue=True)
    shown = until_words(updates, 3)  # the turn runs although it cannot watch for stops

    assert service.stop(ALICE.key) is False  # the signal could not be sent
    next(updates)  # the reply goes on
    updates.close()  # Gradio's cancel of the pressing tab's own handler
    assert saved_reply(store, shown.conversation_id).status == "stopped"
    assert reply_outcomes(store) == ["stopped"]


class StalledEngine:
    """One word, then the next only after a long step: a decoder busy (or a prompt prefilling)."""

    def __init__(self) -> None:
        self.streams: list[StalledStream] = []

    def stream(self, request):
        self.streams.append(StalledStream())
        return self.streams[-1]


class StalledStream:
    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self.produced: list[str] = []
        self.final = None

    def __iter__(self):
        for word in ("Hello", " world"):
            if self._cancelled.is_set():
                break
            self.produced.append(word)
            yield TextDelta(word)
            self._cancelled.wait(5)  # the long step: only a cancel cuts it short
        reason = "cancelled" if self._cancelled.is_set() else "stop"
        self.final = GenerationStats(completion_tokens=len(self.produced), finish_reason=reason)

    def cancel(self) -> None:
        self._cancelled.set()

    def queue_place(self):
        return None


def test_a_stop_on_the_same_replica_cancels_the_generation_without_waiting_for_a_token(store):
    engine = StalledEngine()
    service = service_for(store, LimitSettings(storage="memory://"), engine=engine)
    updates = service.reply(TurnContext(ALICE), None, "hello", report_queue=True)
    shown = until_words(updates, 1)
    # Pressed while the reader waits inside the stream for the next token.
    stopper = threading.Timer(0.05, service.stop, args=(ALICE.key,))
    stopper.start()
    end = next(updates)
    stopper.join()
    assert (end.status, end.reply) == ("stopped", "Hello")
    assert engine.streams[0].produced == ["Hello"]  # the step was cut short: no further token
    assert list(updates) == []
    assert saved_reply(store, shown.conversation_id).status == "stopped"
