"""Run an ASGI app with a real uvicorn server on a free loopback port, in a thread."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

# Below Linux's ephemeral range (32768-60999), which the OS hands to outgoing connections: a port
# picked there could be taken by some client socket between free_port() and the server's bind.
_PORTS = range(20000, 32000)
_random = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on now, outside the range outgoing connections draw from."""
    for _ in range(200):
        port = _random.choice(_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS} on {host}")


@contextlib.contextmanager
def live_server(app, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Yield the base URL while uvicorn serves `app`; shut it down (lifespan included) afterwards."""
    port = port or free_port(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=1,  # clients' open heartbeat streams would hold shutdown
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
