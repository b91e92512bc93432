"""A watch for blocking SQL and Redis calls made on a thread that runs an event loop.

One such call stalls every request and stream the loop serves, for as long as the database or Redis
takes. The watch hooks the two places every synchronous call passes through: SQLAlchemy's
`before_cursor_execute` event (on the Engine class, so every engine) and redis-py's
`send_packed_command`. Test servers run uvicorn in their own threads, each with its own loop, so
the question asked is "does this thread run a loop now", not "is this the main thread".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.connection
from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
_OURS = tuple(
    str(ROOT / package)
    for package in ("app_factory.py", "auth", "core", "guards", "store", "webui")
)


def on_event_loop() -> bool:
    """True when the calling thread runs a server's event loop right now. The test's own main thread
    is left out: the servers under test run in threads of their own, and a browser test's sync
    Playwright keeps an event loop on the main thread that the app never runs on."""
    if threading.current_thread() is threading.main_thread():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _caller() -> str:
    """Where in our code the call came from: the innermost frames of the project, outermost first."""
    frames = [
        f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} {f.name}"
        for f in traceback.extract_stack()
        if f.filename.startswith(_OURS)
    ]
    return " <- ".join(reversed(frames[-4:])) or "outside the project's packages"


@contextlib.contextmanager
def watch_event_loop_io() -> Iterator[list[str]]:
    """Yield a list that collects one line per blocking SQL or Redis call made on an event loop."""
    violations: list[str] = []
    lock = threading.Lock()

    def note(kind: str) -> None:
        if on_event_loop():
            with lock:
                violations.append(f"{kind} on the event loop: {_caller()}")

    def before_cursor_execute(*_: Any) -> None:
        note("SQL")

    send = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        note("Redis")
        return send(self, *args, **kwargs)

    event.listen(Engine, "before_cursor_execute", before_cursor_execute)
    redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    try:
        yield violations
    finally:
        redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", before_cursor_execute)


@pytest.fixture(autouse=True)
def no_blocking_io_on_the_event_loop() -> Iterator[list[str]]:
    """Every test that imports this into its conftest fails if the app made a blocking SQL or
    Redis call on its event loop."""
    with watch_event_loop_io() as violations:
        yield violations
    assert not violations, f"{len(violations)} blocking calls on the loop:\n" + "\n".join(
        violations
    )
