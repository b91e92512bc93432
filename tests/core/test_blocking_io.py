"""run_blocking: blocking calls leave the event loop, in a pool that busy Gradio handlers cannot fill."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread

from core.blocking_io import IO_THREADS, close_off_the_loop, run_blocking


def test_the_call_runs_in_another_thread_and_returns_its_result():
    async def main() -> tuple[int, int, int]:
        worker = await run_blocking(threading.get_ident)
        return threading.get_ident(), worker, await run_blocking(lambda a, b: a + b, 2, 3)

    loop_thread, worker, result = anyio.run(main)
    assert worker != loop_thread and result == 5


def test_a_full_default_pool_does_not_hold_up_blocking_io():
    """Gradio runs every streaming step in anyio's default pool; fill it, then a session lookup
    must still run at once."""
    release = threading.Event()

    async def main() -> str:
        default = anyio.to_thread.current_default_thread_limiter()
        async with anyio.create_task_group() as group:
            for _ in range(int(default.total_tokens)):
                group.start_soon(anyio.to_thread.run_sync, release.wait)
            while default.borrowed_tokens < default.total_tokens:
                await anyio.sleep(0.01)
            with anyio.fail_after(5):
                answer = await run_blocking(lambda: "served")
            release.set()
        return answer

    assert anyio.run(main) == "served"


def test_the_pool_is_bounded():
    running, lock, release = 0, threading.Lock(), threading.Event()

    def work() -> None:
        nonlocal running
        with lock:
            running += 1
        release.wait(5)

    async def main() -> int:
        async with anyio.create_task_group() as group:
            for _ in range(IO_THREADS + 8):
                group.start_soon(run_blocking, work)
            with anyio.fail_after(5):
                while running < IO_THREADS:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)  # room for a call past the bound to start, if it could
            started = running
            release.set()
        return started

    assert anyio.run(main) == IO_THREADS


def test_a_generator_closed_on_the_loop_cleans_up_in_an_io_thread():
    """Gradio closes a stopped reply's generator on its loop; the final save must not run there."""
    cleaned: list[int] = []

    def reply():
        try:
            yield "partial"
        finally:
            cleaned.append(threading.get_ident())

    async def main() -> int:
        updates = reply()
        next(updates)
        close_off_the_loop(updates)
        with anyio.fail_after(5):
            while not cleaned:
                await anyio.sleep(0.01)
        return threading.get_ident()

    loop_thread = anyio.run(main)
    assert cleaned[0] != loop_thread
    updates = reply()
    next(updates)
    close_off_the_loop(updates)  # not on a loop: closed right here
    assert cleaned[1] == threading.get_ident()
