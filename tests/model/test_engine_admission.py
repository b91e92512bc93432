"""The local engine (tiny model) admits by expected wait: each waiting request knows its place and
expected wait, a newcomer past max_wait_seconds is refused with retry_after, a row that frees
starts the next in line, and the estimate learns from the engine's own generations."""

from __future__ import annotations

import pytest

from model.admission import SEED_SECONDS
from model.engine import EngineBusy, QueuePlace
from tests.model.conftest import ask, until


def running(stream) -> bool:
    return stream.queue_place() is None


def test_places_in_line_then_a_refusal_that_says_when_to_come_back(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=10, max_wait_seconds=2 * SEED_SECONDS)
    first = engine.stream(ask("first"))
    assert until(lambda: running(first))
    second, third = engine.stream(ask("second")), engine.stream(ask("third"))
    assert second.queue_place() == QueuePlace(ahead=0, expected_wait=SEED_SECONDS)
    assert third.queue_place() == QueuePlace(ahead=1, expected_wait=2 * SEED_SECONDS)
    with pytest.raises(EngineBusy) as refused:
        engine.stream(ask("fourth"))  # 3 generations away: past 2 x the seed
    assert refused.value.retry_after == SEED_SECONDS
    assert engine.load.waiting == 2  # the refusal took no place

    first.cancel()  # its row frees: the next in line takes it
    assert until(lambda: running(second))
    place = third.queue_place()
    assert place is not None and place.ahead == 0
    assert place.expected_wait < SEED_SECONDS  # the first held its row for less than the seed
    for stream in (second, third):
        stream.cancel()
    assert until(lambda: engine.load.running + engine.load.waiting == 0)


def test_the_estimate_learns_from_generations_that_ended(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=10, max_wait_seconds=SEED_SECONDS)
    for _ in range(8):  # short replies: each holds its row a fraction of a second
        list(engine.stream(ask("quick", max_new_tokens=2)))
    long = engine.stream(ask("long"))
    assert until(lambda: running(long))
    admitted = [engine.stream(ask(f"waiting {i}")) for i in range(4)]  # 4 rounds within 30 s
    place = admitted[-1].queue_place()
    assert place is not None and place.ahead == 3
    assert place.expected_wait <= SEED_SECONDS * 0.8**8 * 4 + 1
    for stream in (long, *admitted):
        stream.cancel()


def test_without_a_waiting_line_only_free_rows_admit(make_engine) -> None:
    engine = make_engine(max_concurrent=2, max_queue=10, max_wait_seconds=0)
    streams = [engine.stream(ask("one")), engine.stream(ask("two"))]
    with pytest.raises(EngineBusy) as refused:
        engine.stream(ask("three"))
    assert refused.value.retry_after >= 1
    for stream in streams:
        stream.cancel()
        assert stream.wait(5)
