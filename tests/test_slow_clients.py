"""Slow, excess and malformed connections, against launch.py --demo as the README starts it: a
connection that has not sent a request's headers in time is closed, one address's connections are
capped, and everyone else is served meanwhile; floods of malformed or refused requests leave a few
JSON lines, never tracebacks. A few checks of guards.connection_limits run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from guards.connection_limits import (
    ConnectionLimits,
    UnsupportedServer,
    check_supported,
    guarded_h11_protocol,
)
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 2.0  # [server] request_header_timeout_seconds for the launched app
CAP = 8  # [server] max_connections_per_address
MARGIN = 1.5  # below uvicorn's own 5 s keep-alive, so the idle test sees our deadline
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n"


@dataclass
class Server:
    url: str
    port: int
    stdout: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("slow_clients")
    port = free_port()
    env = {
        **os.environ,
        "CHAT_DATABASE__URL": f"sqlite:///{tmp}/chat.db",
        "CHAT_MODEL__CACHE_DIR": str(tmp / "models"),
        "CHAT_OIDC__EMBEDDED_PORT": str(free_port()),
        "CHAT_SERVER__REQUEST_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
        "CHAT_SERVER__MAX_CONNECTIONS_PER_ADDRESS": str(CAP),
    }
    stdout = tmp / "stdout.jsonl"
    with stdout.open("w") as out, (tmp / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "--demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, tmp / "stderr.txt")
        yield Server(url, port, stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (tmp / "stderr.txt").read_text() + stdout.read_text()


def _wait_ready(url: str, proc: subprocess.Popen, stderr: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"launch.py exited early: {stderr.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail("the server did not become ready")


def _connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first:
        sock.sendall(first)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (status line, headers and a Content-Length body) from a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _seconds_until_closed(sock: socket.socket, since: float) -> float:
    """Seconds from `since` until the server closed `sock` (EOF or reset); fails if it stays open."""
    sock.settimeout(TIMEOUT + MARGIN + 5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail("the server kept the connection open")
    return time.monotonic() - since


def _eventually(check, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _hold(stack: contextlib.ExitStack, port: int, count: int) -> list[socket.socket]:
    """`count` kept-alive connections the server answered (it may still be releasing earlier ones)."""
    held: list[socket.socket] = []
    deadline = time.monotonic() + 3
    while len(held) < count and time.monotonic() < deadline:
        sock = stack.enter_context(_connect(port, REQUEST))
        if _read_response(sock).startswith(b"HTTP/1.1 200"):
            held.append(sock)
        else:
            sock.close()
    assert len(held) == count
    return held


def test_a_half_sent_request_is_closed_after_the_timeout_while_others_are_served(server):
    started = time.monotonic()
    half = _connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: ch")
    silent = _connect(server.port)
    with half, silent:
        assert httpx.get(f"{server.url}/healthz").status_code == 200  # meanwhile
        assert TIMEOUT * 0.9 <= _seconds_until_closed(half, started) <= TIMEOUT + MARGIN
        assert _seconds_until_closed(silent, started) <= TIMEOUT + MARGIN


@pytest.mark.parametrize("then", [b"", b"GET /heal"], ids=["idle", "half of the next request"])
def test_a_kept_alive_connection_is_closed_when_no_whole_request_follows(server, then):
    with _connect(server.port, REQUEST) as sock:
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        sock.sendall(then)  # uvicorn alone never closes a connection that sent a byte
        assert _seconds_until_closed(sock, answered) <= TIMEOUT + MARGIN


def test_a_slow_but_steady_client_that_finishes_its_headers_in_time_is_served(server):
    with _connect(server.port) as sock:
        for byte in REQUEST:  # the whole request in about 60% of the timeout
            sock.sendall(bytes([byte]))
            time.sleep(TIMEOUT * 0.6 / len(REQUEST))
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_past_the_cap_one_address_is_refused_until_it_closes_some(server):
    with contextlib.ExitStack() as stack:
        held = _hold(stack, server.port, CAP)

        refused = httpx.get(f"{server.url}/healthz")
        assert refused.status_code == 503
        assert "Too many open connections" in refused.text and refused.headers["retry-after"]
        with _connect(server.port, REQUEST) as extra:
            assert _read_response(extra).startswith(b"HTTP/1.1 503")
            assert _seconds_until_closed(extra, time.monotonic()) < 1  # closed at once

        for sock in held:  # the connections already open keep working
            sock.sendall(REQUEST)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        held[0].close()
        held[1].close()
        assert _eventually(lambda: httpx.get(f"{server.url}/healthz").status_code == 200)


def test_a_flood_of_closed_connections_logs_one_json_line_per_address(server):
    with contextlib.ExitStack() as stack:
        _hold(stack, server.port, CAP)
        for _ in range(30):
            with _connect(server.port, REQUEST) as extra:
                assert _read_response(extra).startswith(b"HTTP/1.1 503")

    lines = [json.loads(line) for line in server.stdout.read_text().splitlines() if line[:1] == "{"]
    closed = [line for line in lines if line["msg"] == "connections closed"]
    assert {(line["logger"], line["level"], line["ip"]) for line in closed} == {
        ("chat.server", "warning", "127.0.0.1")
    }
    assert not any("exc" in line for line in closed)
    # Every test above closed connections from 127.0.0.1: one line, then one a minute at most.
    first = datetime.fromisoformat(closed[0]["ts"])
    assert len(closed) <= 1 + (datetime.now(UTC) - first).total_seconds() // 60


def _logged(server: Server) -> list[dict]:
    text = server.stdout.read_text()
    return [json.loads(line) for line in text.splitlines() if line[:1] == "{"]


def test_a_flood_of_malformed_requests_is_answered_400_and_logged_per_address(server):
    for garbage in (b"\x16\x03\x01 not http\r\n\r\n", b"GET / HTTP/1.1\r\nHost\r\n\r\n") * 40:
        with _connect(server.port, garbage) as sock:
            assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    text = server.stdout.read_text()
    assert (
        "Invalid HTTP request received." not in text
    )  # uvicorn's line: one per request, no address
    closed = [line for line in _logged(server) if line["msg"] == "connections closed"]
    assert closed and all(line["ip"] == "127.0.0.1" for line in closed)
    assert "Traceback" not in text  # the count of these closes: the in-process test below


def test_a_flood_of_refused_requests_leaves_a_few_lines_per_address(server):
    started = datetime.now(UTC)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(60):
            anonymous = client.get("/gradio_api/info", headers={"Accept": "application/json"})
            assert anonymous.status_code == 401
            foreign = client.post("/logout", headers={"Origin": "https://evil.example"})
            assert foreign.status_code == 403
    refused = [
        line
        for line in _logged(server)
        if line["msg"] == "request refused" and datetime.fromisoformat(line["ts"]) >= started
    ]
    assert {line["status"] for line in refused} <= {401, 403} and refused
    assert all(line["ip"] == "127.0.0.1" and "exc" not in line for line in refused)
    assert len(refused) <= 2 * 5  # a burst of 5 a minute (the flood may span two windows)
    assert "Traceback" not in server.stdout.read_text()


# guards.connection_limits in-process: what the launched app cannot show quickly.


def test_the_close_log_counts_what_it_held_back_and_forgets_a_quiet_address(caplog):
    timers = []
    limits = ConnectionLimits(header_timeout=15, max_per_address=8)

    def call_later(delay, callback):
        timers.append(callback)  # the test decides when an interval has passed

    def logged():
        lines = [
            (r.ip, r.__dict__.get("over_cap", 0), r.__dict__.get("header_timeout", 0))
            for r in caplog.records
        ]
        caplog.clear()
        return lines

    with caplog.at_level(logging.WARNING, logger="chat.server"):
        limits.record_close("203.0.113.7", "over_cap", call_later)
        for _ in range(30):
            limits.record_close("203.0.113.7", "over_cap", call_later)
        limits.record_close("203.0.113.7", "header_timeout", call_later)
        limits.record_close("198.51.100.1", "header_timeout", call_later)
        assert logged() == [("203.0.113.7", 1, 0), ("198.51.100.1", 0, 1)]

        timers.pop(0)()  # an interval passes for 203.0.113.7: one line with what it held back
        assert logged() == [("203.0.113.7", 30, 1)]
        timers.pop(0)()  # 198.51.100.1 was quiet
        timers.pop(0)()  # and now 203.0.113.7 too: both forgotten
        assert logged() == [] and timers == []

        limits.record_close("203.0.113.7", "header_timeout", call_later)
        assert logged() == [("203.0.113.7", 0, 1)]  # at once again


def test_malformed_requests_are_counted_as_closes_of_their_address(caplog):
    with caplog.at_level(logging.WARNING), _guarded(ConnectionLimits(15, 8)) as port:
        for _ in range(3):
            with _connect(port, b"\x16\x03\x01 not http\r\n\r\n") as sock:
                assert sock.recv(65536).startswith(b"HTTP/1.1 400")
        [line] = [r for r in caplog.records if r.name == "chat.server"]
    assert (line.ip, line.invalid_request) == ("127.0.0.1", 1)  # the next two wait a minute


def test_trusted_proxies_are_not_capped_and_a_mapped_ipv4_peer_counts_as_ipv4():
    limits = ConnectionLimits(15, 8, exempt=(ipaddress.ip_network("10.0.0.5/32"),))
    proxy = limits.address_of(("10.0.0.5", 40000))
    assert all(limits.admit(proxy) for _ in range(100))

    mapped = limits.address_of(("::ffff:192.0.2.1", 40001))
    assert mapped == "192.0.2.1"
    assert [limits.admit(mapped) for _ in range(9)] == [True] * 8 + [False]
    limits.release(mapped)
    assert limits.admit("192.0.2.1") and not limits.admit("192.0.2.1")


def test_other_uvicorn_versions_are_refused_with_one_line():
    check_supported("0.54.3")
    with pytest.raises(
        UnsupportedServer, match=r"uvicorn 0\.55\.0 is not supported.*requirements\.txt"
    ):
        check_supported("0.55.0")


async def _slow_app(scope, receive, send):
    """Streams three chunks 0.4 s apart, or echoes the length of a body it waits for."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = f"body={len(body)}".encode()
    if scope["path"] != "/stream":
        headers = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(3):
        await send({"type": "http.response.body", "body": b"chunk;", "more_body": True})
        await asyncio.sleep(0.4)
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[int]:
    """uvicorn with the guarded protocol, a 0.5 s header deadline, in a thread."""
    with _guarded(ConnectionLimits(header_timeout=0.5, max_per_address=8)) as port:
        yield port


@contextlib.contextmanager
def _guarded(limits: ConnectionLimits) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _slow_app,
        host="127.0.0.1",
        port=port,
        http=guarded_h11_protocol(limits),
        ws="none",
        lifespan="off",
        log_level="warning",
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert _eventually(lambda: uv.started, 10)
    try:
        yield port
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_a_response_or_a_body_that_outlasts_the_deadline_is_not_cut(guarded_server):
    stream = httpx.get(f"http://127.0.0.1:{guarded_server}/stream", timeout=5)
    assert stream.text == "chunk;" * 3 + "body=0"  # 1.2 s of streaming, the client silent

    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
    with _connect(guarded_server, head) as sock:
        time.sleep(0.8)  # the body is not timed: its size is capped elsewhere
        sock.sendall(b"hello")
        assert _read_response(sock).endswith(b"body=5")


def test_pipelined_requests_are_answered_then_the_idle_connection_closed(guarded_server):
    with _connect(guarded_server, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n" * 2) as sock:
        answered = time.monotonic()
        data = b""
        while data.count(b"body=0") < 2:
            data += sock.recv(65536)
        assert data.count(b"HTTP/1.1 200") == 2
        assert _seconds_until_closed(sock, answered) <= 0.5 + MARGIN
