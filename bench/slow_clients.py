"""What each server setting does with slow clients: half-sent requests, slowloris drips, silent
keep-alive connections, a silent client of a streaming response, and many connections from one address.

    .venv/bin/python bench/slow_clients.py            # every variant whose server is installed
    .venv/bin/python bench/slow_clients.py guarded    # one variant
    .venv/bin/python bench/slow_clients.py --memory   # server memory per half-sent connection

Each variant serves a tiny ASGI app in a subprocess with 2-second timeouts; the client opens its
connections at once and, 6 s later, counts which are still open. hypercorn and httptools are not
project dependencies: install them in a scratch virtualenv (with fastapi) and run this script with
its interpreter to include them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 2
CHECK_AT = 6.0
HALF = b"GET / HTTP/1.1\r\nHost: bench\r\n"
FULL = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
ONCE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"

VARIANTS = {
    "uvicorn-h11": ("uvicorn", {"http": "h11", "timeout_keep_alive": TIMEOUT}),
    "uvicorn-httptools": ("uvicorn", {"http": "httptools", "timeout_keep_alive": TIMEOUT}),
    "uvicorn-limit-concurrency-30": ("uvicorn", {"http": "h11", "limit_concurrency": 30}),
    "uvicorn-h11-max-incomplete-1k": (
        "uvicorn",
        {"http": "h11", "h11_max_incomplete_event_size": 1024},
    ),
    "hypercorn-keep-alive": ("hypercorn", {"keep_alive_timeout": TIMEOUT}),
    "hypercorn-read-timeout": ("hypercorn", {"read_timeout": TIMEOUT, "keep_alive_timeout": 3600}),
    "guarded": ("guarded", {}),
}


async def app(scope, receive, send):
    """`/` answers at once; `/stream` sends a chunk every 0.5 s for 6 s while its client is silent."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["path"] == "/stream":
        for _ in range(12):
            await send({"type": "http.response.body", "body": b"chunk\n", "more_body": True})
            await asyncio.sleep(0.5)
    await send({"type": "http.response.body", "body": b"ok\n"})


def serve(variant: str, port: int) -> None:
    kind, options = VARIANTS[variant]
    if kind == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        for name, value in options.items():
            setattr(config, name, value)
        asyncio.run(hypercorn_serve(app, config))
        return
    import uvicorn

    if kind == "guarded":
        import logging

        logging.getLogger("chat.server").setLevel(logging.ERROR)  # its closed-connection lines
        sys.path.insert(0, str(ROOT))
        from guards.connection_limits import ConnectionLimits, guarded_h11_protocol

        options = {"http": guarded_h11_protocol(ConnectionLimits(TIMEOUT, 64)), "ws": "none"}
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", **options)


def installed(variant: str) -> bool:
    kind, options = VARIANTS[variant]
    module = "httptools" if options.get("http") == "httptools" else kind
    return importlib.util.find_spec("uvicorn" if module == "guarded" else module) is not None


async def _open(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    if first:
        sock.send(first)
    return sock


def _state(sock: socket.socket) -> str:
    """The socket's state as the client sees it: open, closed (EOF or reset), or answered 503."""
    try:
        data = sock.recv(65536, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"
    if data.startswith(b"HTTP/1.1 503"):
        return "answered 503"
    return "closed" if not data else "open"


async def _request(port: int, request: bytes, pace: float = 0.0) -> bytes:
    """Send `request` (one byte every `pace` seconds when pace > 0) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if pace:
            for byte in request:
                writer.write(bytes([byte]))
                await asyncio.sleep(pace)
        else:
            writer.write(request)
        return await asyncio.wait_for(reader.read(), 15)
    except (OSError, TimeoutError) as exc:
        return f"failed: {type(exc).__name__}".encode()
    finally:
        writer.close()


async def _drip(sock: socket.socket) -> None:
    """Slowloris: one byte of an endless header every 0.5 s."""
    with contextlib.suppress(OSError):
        sock.send(HALF)
        while True:
            await asyncio.sleep(0.5)
            sock.send(b"X")


async def _keep_alive_then(port: int, after: bytes) -> socket.socket:
    sock = await _open(port, FULL)
    await asyncio.sleep(0.2)
    with contextlib.suppress(BlockingIOError):
        sock.recv(65536)
    if after:
        sock.send(after)
    return sock


async def measure(port: int) -> dict[str, str]:
    silent = [await _open(port) for _ in range(10)]
    half = [await _open(port, HALF) for _ in range(10)]
    drips = [await _open(port) for _ in range(5)]
    drip_tasks = [asyncio.create_task(_drip(sock)) for sock in drips]
    idle = [await _keep_alive_then(port, b"") for _ in range(5)]
    idle_partial = [await _keep_alive_then(port, b"G") for _ in range(5)]
    stream = asyncio.create_task(_request(port, ONCE.replace(b"/", b"/stream", 1)))
    steady = asyncio.create_task(_request(port, ONCE, pace=1.5 / len(ONCE)))
    await asyncio.sleep(1.0)
    during = await _request(port, ONCE)
    await asyncio.sleep(CHECK_AT - 1.0)
    groups = {"silent": silent, "half-sent": half, "slowloris": drips, "idle keep-alive": idle}
    groups["keep-alive, then 1 byte"] = idle_partial
    result = {name: _count_open(socks) for name, socks in groups.items()}
    for task in drip_tasks:
        task.cancel()
    streamed = await stream
    chunks = streamed.count(b"chunk\n")
    result["silent client of a 6 s stream"] = "served" if chunks == 12 else f"cut ({chunks}/12)"
    result["steady client, headers in 1.5 s"] = "served" if b" 200 " in await steady else "failed"
    result["normal request meanwhile"] = (
        "served" if b" 200 " in during else during.decode().splitlines()[0]
    )
    for sock in silent + half + drips + idle + idle_partial:
        sock.close()
    await asyncio.sleep(0.5)
    many = [await _open(port, HALF) for _ in range(100)]
    await asyncio.sleep(0.5)
    states = [_state(sock) for sock in many]
    result["100 from one address"] = ", ".join(
        f"{states.count(s)} {s}" for s in ("open", "answered 503", "closed") if s in states
    )
    for sock in many:
        sock.close()
    return result


def _count_open(socks: list[socket.socket]) -> str:
    return f"{sum(_state(sock) == 'open' for sock in socks)}/{len(socks)} open"


def memory(port: int, pid: int, count: int = 500, header_bytes: int = 8000) -> dict[str, str]:
    """The server's resident memory per half-sent connection holding `header_bytes` of headers."""

    def rss_kb() -> int:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])

    before = rss_kb()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in socks:
        sock.sendall(HALF + b"X-Pad: " + b"a" * header_bytes)
    time.sleep(1.0)
    after = rss_kb()
    for sock in socks:
        sock.close()
    per = (after - before) / count
    return {
        f"{count} half-sent, {header_bytes} B each": f"+{after - before} KB RSS, {per:.1f} KB each"
    }


def run(variant: str, measure_memory: bool = False) -> dict[str, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", variant, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"{variant} did not start")
            time.sleep(0.1)
        if measure_memory:
            return memory(port, server.pid)
        time.sleep(TIMEOUT + 0.5)  # let the probe's own connection time out
        return asyncio.run(measure(port))
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument(
        "--memory", action="store_true", help="server memory per half-sent connection instead"
    )
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    if args.memory:
        for name, value in run("uvicorn-h11", measure_memory=True).items():
            print(f"uvicorn-h11: {name}: {value}")
        return
    print(f"timeouts {TIMEOUT} s, state {CHECK_AT:.0f} s after the connections opened")
    for variant in args.variants or [v for v in VARIANTS if installed(v)]:
        print(f"\n{variant}")
        for name, value in run(variant).items():
            print(f"  {name:34} {value}")


if __name__ == "__main__":
    main()
