"""OpenAIEngine against a real `transformers serve` process on loopback serving the tiny model."""

from __future__ import annotations

import gc
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from model.engine import EngineBusy, EngineClosed, EngineError, PromptTooLong
from model.openai_engine import ApproximateTokenCounter, EngineUnavailable, OpenAIEngine
from model.openai_settings import OpenAISettings
from model.settings import GenerationSettings
from model.types import ChatMessage, GenerationRequest
from tests.live_server import free_port
from tests.model.conftest import ask
from tests.model.openai_server import OpenAIServer, openai_server

SECRET_KEY = "sk-test-do-not-leak-1234567890"  # a test value


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenAIServer]:
    log = tmp_path_factory.mktemp("openai-server") / "server.log"
    with openai_server(tiny_model_dir, log) as running:
        yield running


@pytest.fixture
def make_engine(server: OpenAIServer) -> Iterator[Callable[..., OpenAIEngine]]:
    """Engines pointed at the live server (or elsewhere); all are closed after the test."""
    engines: list[OpenAIEngine] = []

    def make(clock: Callable[[], float] = time.monotonic, **overrides: object) -> OpenAIEngine:
        remote = {"base_url": server.base_url, "model": server.model, "api_key": SECRET_KEY}
        remote |= {k: overrides.pop(k) for k in list(overrides) if k in OpenAISettings.model_fields}
        generation = GenerationSettings(**{"max_new_tokens": 8192, **overrides})
        engine = OpenAIEngine(OpenAISettings(**remote), generation, clock=clock)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def test_stream_delivers_several_deltas_equal_to_the_non_streamed_greedy_reply(
    make_engine, server: OpenAIServer
) -> None:
    engine = make_engine(system_prompt="Be brief.")
    stream = engine.stream(ask("Hello there", max_new_tokens=24, temperature=0.0))
    deltas = [d.text for d in stream]

    direct = openai.OpenAI(base_url=server.base_url, api_key="x").chat.completions.create(
        model=server.model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello there"},
        ],
        max_tokens=24,
        temperature=0.0,
    )
    assert len(deltas) > 1
    assert "".join(deltas) == direct.choices[0].message.content
    assert stream.final.finish_reason == "length"  # the tiny model never emits eos
    assert stream.final.completion_tokens == 24
    assert stream.final.time_to_first_token is not None
    assert engine.load.running == 0


def test_max_new_tokens_is_capped_by_settings(make_engine) -> None:
    engine = make_engine(max_new_tokens=5)
    stream = engine.stream(ask("Hello", max_new_tokens=1000, temperature=0.0))
    assert len(list(stream)) == 5
    assert stream.final.finish_reason == "length"


def _assert_server_idle_soon(engine: OpenAIEngine) -> None:
    # The server generates one request at a time: had the cancelled one kept running (8192
    # tokens, minutes on this CPU), this short request would wait behind it.
    started = time.monotonic()
    assert len(list(engine.stream(ask("next", max_new_tokens=3, temperature=0.0)))) == 3
    assert time.monotonic() - started < 10


def test_cancel_disconnects_and_the_server_stops_generating(make_engine) -> None:
    engine = make_engine()
    stream = engine.stream(ask("Tell me a long story", temperature=0.0))
    deltas = iter(stream)
    for _ in range(3):
        next(deltas)
    stream.cancel()
    assert list(deltas) == []
    assert stream.final.finish_reason == "cancelled"
    assert engine.load.running == 0
    _assert_server_idle_soon(engine)


def test_closing_the_iterator_disconnects(make_engine) -> None:
    engine = make_engine()
    deltas = iter(engine.stream(ask("Tell me a long story", temperature=0.0)))
    next(deltas)
    deltas.close()  # what Gradio does on the stop button or a closed tab
    assert engine.load.running == 0
    _assert_server_idle_soon(engine)


def test_cancel_from_another_thread_ends_a_blocked_reader(make_engine) -> None:
    engine = make_engine()
    stream = engine.stream(ask("Tell me a long story", temperature=0.0))
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.extend(d.text for d in stream))
    reader.start()
    while not received:
        time.sleep(0.01)
    stream.cancel()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert stream.final.finish_reason == "cancelled"
    _assert_server_idle_soon(engine)


@dataclass
class StalledServer:
    url: str
    disconnected: threading.Event
    request_head: bytes = b""  # request line and headers, as received

    def header(self, name: str) -> str | None:
        lines = self.request_head.decode("latin-1").split("\r\n")[1:]
        values = [v.strip() for n, _, v in (h.partition(":") for h in lines) if n.lower() == name]
        return values[0] if values else None


@pytest.fixture
def stalled_server() -> Iterator[StalledServer]:
    """Answers with stream headers, then sends nothing (a long prefill); reports the disconnect."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = StalledServer(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", threading.Event())

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received and (data := conn.recv(65536)):
                received += data
            server.request_head = received.partition(b"\r\n\r\n")[0]
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            while conn.recv(65536):
                pass
            server.disconnected.set()  # recv returned b"": the client closed its side

    threading.Thread(target=serve, daemon=True).start()
    yield server
    listener.close()


def test_cancel_wakes_a_reader_blocked_on_a_silent_server(make_engine, stalled_server) -> None:
    url, disconnected = stalled_server.url, stalled_server.disconnected
    engine = make_engine(base_url=url, read_timeout_seconds=120)
    stream = engine.stream(ask("hello"))
    finished = threading.Event()
    threading.Thread(target=lambda: (list(stream), finished.set()), daemon=True).start()
    time.sleep(0.5)  # the reader is now blocked waiting for the first chunk
    assert not finished.is_set()
    stream.cancel()
    assert finished.wait(2)
    assert disconnected.wait(2)
    assert stream.final.finish_reason == "cancelled"


def test_a_silent_server_times_out_as_unavailable(make_engine, stalled_server) -> None:
    url, disconnected = stalled_server.url, stalled_server.disconnected
    engine = make_engine(base_url=url, read_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        list(engine.stream(ask("hello")))
    assert time.monotonic() - started < 3
    assert disconnected.wait(2)
    assert engine.load.running == 0


def test_the_request_id_header_is_a_uuid_equal_to_the_engine_side_id(
    make_engine, stalled_server
) -> None:
    # llama-cpp-python's server answers 400 to any X-Request-Id that is not a UUID.
    engine = make_engine(base_url=stalled_server.url, read_timeout_seconds=0.5)
    stream = engine.stream(ask("hello"))
    with pytest.raises(EngineUnavailable):
        list(stream)
    sent = stalled_server.header("x-request-id")
    assert sent is not None
    assert str(uuid.UUID(sent)) == sent
    assert sent == stream.final.request_id  # one id in our log, the server's log and the message


def test_engine_close_stops_running_streams_with_a_shutdown_message(make_engine) -> None:
    engine = make_engine()
    deltas = iter(engine.stream(ask("Tell me a long story", temperature=0.0)))
    next(deltas)
    engine.close()
    with pytest.raises(EngineClosed):
        list(deltas)
    with pytest.raises(EngineClosed):
        engine.stream(ask("hello"))


def test_full_queue_refuses_at_once_and_frees_when_done(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=1)
    first = engine.stream(ask("one", temperature=0.0))
    first_deltas = iter(first)
    next(first_deltas)  # running
    queued = engine.stream(ask("two", max_new_tokens=3, temperature=0.0))
    started = time.monotonic()
    with pytest.raises(EngineBusy) as refused:
        engine.stream(ask("three"))
    assert time.monotonic() - started < 0.5
    assert "busy" in refused.value.user_message

    results: list[str] = []
    waiter = threading.Thread(target=lambda: results.extend(d.text for d in queued))
    waiter.start()
    time.sleep(0.3)
    assert results == []  # still waiting for the slot
    first.cancel()
    waiter.join(timeout=10)
    assert len(results) == 3
    assert (engine.load.running, engine.load.waiting) == (0, 0)


def test_cancelling_a_queued_request_leaves_the_queue(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=1)
    first_deltas = iter(engine.stream(ask("one", temperature=0.0)))
    next(first_deltas)
    queued = engine.stream(ask("two"))
    done = threading.Event()
    threading.Thread(target=lambda: (list(queued), done.set())).start()
    time.sleep(0.2)
    queued.cancel()
    assert done.wait(5)
    assert queued.final.finish_reason == "cancelled"
    assert engine.load.waiting == 0
    first_deltas.close()


def test_a_stream_dropped_without_iterating_gives_its_slot_back(make_engine) -> None:
    engine = make_engine(max_concurrent=1, max_queue=0)
    stream = engine.stream(ask("never read"))
    del stream
    gc.collect()
    assert len(list(engine.stream(ask("hi", max_new_tokens=2, temperature=0.0)))) == 2


def test_server_down_gives_a_friendly_error_and_not_ready(make_engine) -> None:
    url = down_url()
    engine = make_engine(base_url=url)
    with pytest.raises(EngineUnavailable) as failed:
        list(engine.stream(ask("hello")))
    message = failed.value.user_message
    assert "not responding" in message
    assert "127.0.0.1" not in message and url not in message and SECRET_KEY not in message
    assert engine.load.running == 0
    assert engine.ready() is False


def test_http_error_from_the_server_is_an_engine_error_with_a_reference(
    make_engine, server
) -> None:
    engine = make_engine(base_url=server.base_url.replace("/v1", "/no-such-api/v1"))  # real 404
    stream = engine.stream(ask("hello"))
    with pytest.raises(EngineError) as failed:
        list(stream)
    assert not isinstance(failed.value, EngineUnavailable)
    assert stream.final.request_id in failed.value.user_message
    assert "no-such-api" not in failed.value.user_message
    assert stream.final.finish_reason == "error"
    assert engine.load.running == 0


def test_ready_asks_the_models_endpoint_and_caches_the_answer(make_engine, server) -> None:
    now = [1000.0]
    engine = make_engine(clock=lambda: now[0], ready_cache_seconds=5)

    def models_calls() -> int:
        return server.log_text().count("GET /v1/models")

    before, generations = models_calls(), server.log_text().count("POST /v1/chat")
    assert engine.ready() is True
    assert engine.ready() is True  # cached: no second request
    assert models_calls() == before + 1
    now[0] += 6
    assert engine.ready() is True
    assert models_calls() == before + 2
    assert server.log_text().count("POST /v1/chat") == generations  # never generates


def test_oldest_turns_are_dropped_to_fit_and_the_reply_still_streams(make_engine) -> None:
    engine = make_engine(max_input_tokens=120)
    old = [
        ChatMessage("user", "word " * 100),
        ChatMessage("assistant", "reply " * 100),
    ]
    request = GenerationRequest(
        messages=(*old, ChatMessage("user", "short question")), max_new_tokens=2, temperature=0.0
    )
    stream = engine.stream(request)
    assert len(list(stream)) == 2
    assert stream.final.dropped_messages == 2


def test_a_message_too_long_alone_is_refused_before_sending(make_engine) -> None:
    engine = make_engine(max_input_tokens=64)
    with pytest.raises(PromptTooLong):
        engine.stream(ask("中文" * 200))
    assert engine.load.running == 0


def test_token_estimate_counts_cjk_per_character_and_ascii_per_four() -> None:
    counter = ApproximateTokenCounter(ascii_chars_per_token=4.0)
    base = counter.count([{"role": "user", "content": ""}])
    assert counter.count([{"role": "user", "content": "a" * 40}]) == base + 10
    assert counter.count([{"role": "user", "content": "你好" * 10}]) == base + 20
