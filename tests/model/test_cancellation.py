"""Every way a user or the server stops a reply ends its generation within a decoding step: its row
leaves the decoder, its place is free, and its final stats say it was cancelled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from model.engine import EngineClosed
from model.types import EngineLoad
from tests.model.conftest import LONG, ask, until

STOP_BOUND_SECONDS = 2.0  # a tiny-model step is ~2 ms; generous for a loaded CI machine
IDLE = EngineLoad(waiting=0, running=0)


def start(engine):
    """Start a long generation and read until it is decoding; return stream and iterator."""
    stream = engine.stream(ask("tell me everything"))
    deltas = iter(stream)
    next(deltas)
    assert engine.load == EngineLoad(waiting=0, running=1)
    assert stream.final is None  # still generating
    return stream, deltas


def assert_stopped(engine, stream, tokens_at_stop: int) -> None:
    assert stream.wait(STOP_BOUND_SECONDS)
    assert engine.load == IDLE
    final = stream.final
    assert final.completion_tokens - tokens_at_stop <= 2  # at most the step in flight
    assert final.completion_tokens < LONG
    assert final.finish_reason == "cancelled"


def test_cancel_stops_the_generation(make_engine) -> None:
    engine = make_engine()
    stream, deltas = start(engine)
    at_stop = stream.generated_tokens
    stream.cancel()
    assert_stopped(engine, stream, at_stop)
    list(deltas)  # the caller's iteration ends too


def test_closing_the_iterator_stops_the_generation(make_engine) -> None:
    engine = make_engine()
    stream, deltas = start(engine)
    at_stop = stream.generated_tokens
    deltas.close()  # what Gradio does on the stop button or a dropped connection
    assert_stopped(engine, stream, at_stop)


def test_closing_a_handler_generator_around_the_stream_stops_the_generation(make_engine) -> None:
    engine = make_engine()
    streams = []

    def handler() -> Iterator[str]:  # shaped like a Gradio streaming handler
        reply = ""
        streams.append(stream := engine.stream(ask("hi")))
        for delta in stream:
            reply += delta.text
            yield reply

    updates = handler()
    next(updates)
    updates.close()
    assert streams[0].wait(STOP_BOUND_SECONDS)
    assert streams[0].final.finish_reason == "cancelled"
    assert engine.load == IDLE


def test_engine_close_stops_running_generations(make_engine) -> None:
    engine = make_engine()
    stream, deltas = start(engine)
    at_stop = stream.generated_tokens
    engine.close(timeout=STOP_BOUND_SECONDS)
    assert_stopped(engine, stream, at_stop)
    with pytest.raises(EngineClosed):
        list(deltas)  # the user is told the server is shutting down
    assert not engine.ready()


def test_an_abandoned_iterator_stops_the_generation(make_engine) -> None:
    engine = make_engine()
    stream, deltas = start(engine)
    del stream, deltas
    gc.collect()
    assert until(lambda: engine.load == IDLE, STOP_BOUND_SECONDS)
