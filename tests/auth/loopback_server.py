"""Run an ASGI app under a real uvicorn on a loopback socket, and reach it from chosen source addresses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Yield the base URL of `app` served by uvicorn with proxy_headers=False, as in production."""
    with serve_built(lambda url: app, host) as url:
        yield url


@contextmanager
def serve_built(
    build: Callable[[str], ASGIApp], host: str = "127.0.0.1", lifespan: str = "off"
) -> Iterator[str]:
    """Like serve(), for apps that must know their own URL (public_url) before they are built."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    config = uvicorn.Config(
        build(url),
        proxy_headers=False,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # startup poll, not an expiry wait
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def client_from(source: str, base_url: str) -> httpx.Client:
    """An HTTP client whose connections leave from `source` (e.g. 127.0.0.2, a second host)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(transport=transport, base_url=base_url, timeout=10)
