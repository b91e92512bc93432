"""Every way a user or the server stops a reply ends the generating thread within a decoding step."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from model.engine import EngineClosed
from tests.model.conftest import LONG, ask, worker_thread

STOP_BOUND_SECONDS = 2.0  # a tiny-model step is ~2 ms; generous for a loaded CI machine


def start(engine):
    """Start a long generation and read until it is decoding; return stream, iterator, thread."""
    stream = engine.stream(ask("tell me everything"))
    deltas = iter(stream)
    next(deltas)
    thread = worker_thread(stream.stats.request_id)
    assert thread is not None and thread.is_alive()
    return stream, deltas, thread


def assert_stopped(stream, thread, tokens_at_stop: int) -> None:
    thread.join(STOP_BOUND_SECONDS)
    assert not thread.is_alive()
    assert stream.stats.completion_tokens - tokens_at_stop <= 2  # at most the step in flight
    assert stream.stats.completion_tokens < LONG
    assert stream.stats.finish_reason == "cancelled"


def test_cancel_stops_the_thread(make_engine) -> None:
    stream, deltas, thread = start(make_engine())
    at_stop = stream.stats.completion_tokens
    stream.cancel()
    assert_stopped(stream, thread, at_stop)
    list(deltas)  # the caller's iteration ends too


def test_closing_the_iterator_stops_the_thread(make_engine) -> None:
    stream, deltas, thread = start(make_engine())
    at_stop = stream.stats.completion_tokens
    deltas.close()  # what Gradio does on the stop button or a dropped connection
    assert_stopped(stream, thread, at_stop)


def test_closing_a_handler_generator_around_the_stream_stops_the_thread(make_engine) -> None:
    engine = make_engine()

    def handler() -> Iterator[str]:  # shaped like a Gradio streaming handler
        reply = ""
        for delta in engine.stream(ask("hi")):
            reply += delta.text
            yield reply

    updates = handler()
    next(updates)
    thread = next(t for t in _generate_threads())
    updates.close()
    thread.join(STOP_BOUND_SECONDS)
    assert not thread.is_alive()


def test_engine_close_stops_running_generations(make_engine) -> None:
    engine = make_engine()
    stream, deltas, thread = start(engine)
    at_stop = stream.stats.completion_tokens
    engine.close(timeout=STOP_BOUND_SECONDS)
    assert_stopped(stream, thread, at_stop)
    with pytest.raises(EngineClosed):
        list(deltas)  # the user is told the server is shutting down
    assert not engine.ready()


def test_an_abandoned_iterator_stops_the_thread(make_engine) -> None:
    stream, deltas, thread = start(make_engine())
    request_id = stream.stats.request_id
    del stream, deltas
    gc.collect()
    thread.join(STOP_BOUND_SECONDS)
    assert not thread.is_alive()
    assert worker_thread(request_id) is None


def _generate_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("generate-")]
