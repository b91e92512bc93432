"""Hand freed heap memory back to the operating system (glibc; elsewhere nothing to do).

glibc keeps freed memory in its arenas for reuse, and only the top of a heap is ever released on
its own. Two places in this engine free a lot of it in the middle of a heap:
- loading: each fp32 weight is read, quantized and freed (measured: +170 MB peak when loading
  off the main thread, without a trim after each weight);
- a burst of concurrent replies: the batch's KV cache is re-laid out as rows join, leave and
  grow, each time into a bigger or smaller buffer, and the holes left behind stay resident
  (measured on an AMD EPYC: after 8 streams of 64 tokens the idle process held 1,293 MB; a trim
  brought it back to 822 MB, what it held before the burst).
A trim walks the arenas (1-4 ms here), and whatever it released is page-faulted back in
when it is needed again (~4 us a page on these virtual machines), so it runs only at those
moments, not per step or after every reply: when the decoder goes idle after a batch, and while
a batch is re-laid out, once per TrimEvery's worth of freed buffers (model.kv_batch).
"""

from __future__ import annotations

import contextlib
import ctypes


def return_freed_memory() -> None:
    """Release the free pages of every malloc arena to the OS (malloc_trim)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class TrimEvery:
    """Trims the heap each time at least `nbytes` of freed memory has been reported."""

    def __init__(self, nbytes: int) -> None:
        self._every = nbytes
        self._pending = 0

    def freed(self, nbytes: int) -> None:
        self._pending += nbytes
        if self._pending >= self._every:
            self._pending = 0
            return_freed_memory()
