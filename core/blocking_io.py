"""The one way async code makes a blocking call (SQL, Redis): in a worker thread, off the event loop.

One event loop serves every request and every streaming reply; a synchronous database or Redis
call made on it stalls them all for as long as that call takes (seconds, for a SQLite writer
waiting on the lock or a Redis at its timeout). So middlewares and async routes never call the
session store, the audit sink, the login state, the Gradio bindings, the rate limiter or the token
store directly: they `await run_blocking(store.method, ...)`. Synchronous callers (Gradio handlers,
which Gradio already runs in threads, and the store's background jobs) keep calling them directly.
One exception to "Gradio handlers run in threads": Gradio closes a cancelled handler's generator
on its event loop, so a generator whose cleanup blocks is closed with `close_off_the_loop`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from typing import Any, TypeVar, TypeVarTuple

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar

Args = TypeVarTuple("Args")
R = TypeVar("R")

# Not anyio's default 40 threads, which 40 streaming replies fill (Gradio runs each step there).
IO_THREADS = 16  # SQLAlchemy's default pool holds 5 + 10 connections; more threads would only queue

_limiter: RunVar[CapacityLimiter] = RunVar("blocking_io_limiter")  # one per event loop
_closing: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks
log = logging.getLogger("chat.blocking_io")


async def run_blocking(call: Callable[[*Args], R], *args: *Args) -> R:
    """`call(*args)` in a worker thread of the I/O pool; the caller's task waits, the loop does not.

    A cancelled caller still waits for the call to finish: an audit record or a session write is
    never left half-done by a client that went away.
    """
    return await anyio.to_thread.run_sync(call, *args, limiter=_io_limiter())


def _io_limiter() -> CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = CapacityLimiter(IO_THREADS)
        _limiter.set(limiter)
        return limiter


def close_off_the_loop(generator: Generator[Any, Any, Any]) -> None:
    """Close `generator`, whose cleanup may block (a stopped reply's final save, a lock release).

    Called from an event loop (Gradio's cancel and reset close a handler's generator there), the
    close runs in an I/O thread and this returns at once; from any other thread, it runs here.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        generator.close()
        return
    task = loop.create_task(run_blocking(generator.close))
    _closing.add(task)
    task.add_done_callback(_closed)


def _closed(task: asyncio.Task[None]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("closing a generator failed", exc_info=task.exception())
