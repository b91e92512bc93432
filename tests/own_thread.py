"""Run a call in a fresh thread: no event loop from an earlier test (sync Playwright keeps one on the
main thread for the whole session) can be in its way."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

R = TypeVar("R")


def in_own_thread(call: Callable[..., R], *args: object) -> R:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call, *args).result()
