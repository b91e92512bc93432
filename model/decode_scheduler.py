"""One thread that decodes every running generation together, one token per row per step.

Requests join between steps (their prompt is prefilled alone, reusing the conversation's prefix
cache when it matches) and leave between steps (end of sequence, length, cancel), so concurrent
users share each step's weight reads instead of queueing: decoding a 0.5B model on 2 cores is
bound by reading the weights, and a batch of 8 reads them once for 8 tokens. A long prompt is
prefilled in chunks with a step of the running rows between them, so it pauses them for a chunk
(~0.5 s for 256 tokens on an AMD EPYC) instead of its whole prefill (~2 s for 1,500 tokens).

Why our own loop and not transformers' continuous batching (`init_continuous_batching`): on
these CPUs it gave about what a static batch gives (12.3 tok/s for 8 requests vs 16.4), and it
has no place for what we need around the loop: a conversation's KV kept after its request ends
and bounded in MB, per-user keys (its block sharing matches prompts across users, a timing side
channel), per-request sampling values, and cancellation checked at every step.

All torch work runs on this one thread (see threaded_engine's docstring on OpenMP teams). It
starts with the first request and waits for work between bursts until the engine closes, because
a thread started per burst pays for a new OpenMP team and per-thread buffers on its first prompt:
222 against 193 ms to the first token of a 128-token prompt sent after 0.5 s idle (medians of 12,
two alternating processes each, AMD EPYC). It hands the memory a batch freed back to the OS when the
batch is over.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch

from model.generation_job import GenerationJob
from model.heap import return_freed_memory
from model.kv_batch import BatchedKV, cache_pairs
from model.kv_dtype import prompt_products
from model.prefix_cache import CacheKey, PrefixCache
from model.sampling import choose_token
from model.slack_cache import KVPairs, slack_cache, with_room_for

log = logging.getLogger("chat.engine")

# Tokens of room kept behind a conversation's cached KV: a next message (and the chat template
# around it) up to this long is prefilled without copying the cached part.
NEXT_MESSAGE_ROOM = 128


def prefill_chunk(
    model,
    chunk: list[int],
    start: int,
    cache,
    prompt_dtype: torch.dtype | None = None,
    logits_to_keep: int = 1,
) -> torch.Tensor:
    """Prefill `chunk`, the prompt's tokens from position `start` on, into `cache` (which holds
    the tokens before it), as the engine prefills every prompt; the logits of the last
    `logits_to_keep` positions (0: all)."""
    stop = start + len(chunk)
    with prompt_products(prompt_dtype):
        out = model(
            input_ids=torch.tensor([chunk], dtype=torch.long),
            attention_mask=torch.ones((1, stop), dtype=torch.long),
            position_ids=torch.arange(start, stop).unsqueeze(0),
            cache=cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )
    return out.logits


@dataclass(eq=False)
class _Row:
    job: GenerationJob
    key: CacheKey | None
    ids: list[int]  # prompt, then every chosen token; the KV covers all but the last


class DecodeScheduler:
    def __init__(
        self,
        model: object,
        *,
        eos_ids: frozenset[int],
        max_batch: int,
        prefix_cache: PrefixCache | None,
        prompt_threads: int,
        decode_threads: int,
        kv_dtype: torch.dtype | None = None,
        prompt_dtype: torch.dtype | None = None,
        prompt_chunk: int = 256,
    ) -> None:
        self._model = model
        self._prompt_chunk = prompt_chunk  # prompt tokens prefilled between two decoding steps
        self._kv_dtype = kv_dtype  # None: as the model computes keys and values
        # dtype of a prompt's attention products over cached tokens; None: as stored (model.kv_dtype)
        self._prompt_dtype = prompt_dtype
        self._eos_ids = eos_ids
        self._max_batch = max_batch
        self._prefix_cache = prefix_cache
        self._threads = {"prompt": prompt_threads, "decode": decode_threads}
        self._top_k = int(getattr(model.generation_config, "top_k", None) or 0)
        self._lock = threading.Lock()
        self._pending: deque[tuple[GenerationJob, CacheKey | None]] = deque()
        self._work = threading.Condition(self._lock)  # notified on submit and on stop
        self._stopping = False
        self._thread: threading.Thread | None = None

    def submit(self, job: GenerationJob, key: CacheKey | None) -> None:
        """Queue an admitted job; it joins the batch before the next step. job.done is set at its end."""
        with self._lock:
            self._pending.append((job, key))
            if self._thread is None:  # the first request (or a straggler after stop())
                self._thread = threading.Thread(
                    target=self._loop, name="engine-decoder", daemon=True
                )
                self._thread.start()
            self._work.notify()

    def stop(self, timeout: float) -> None:
        """End the decoder thread once it has no work left (close() cancelled it); wait for it."""
        with self._lock:
            self._stopping = True
            self._work.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self, running: int) -> list[tuple[GenerationJob, CacheKey | None]] | None:
        """The queued jobs that fit in the batch, waiting for one while idle; None: stop."""
        with self._lock:
            while not running and not self._pending:
                if self._stopping:
                    self._thread = None
                    return None
                self._work.wait()
            return [
                self._pending.popleft()
                for _ in range(min(len(self._pending), self._max_batch - running))
            ]

    def _loop(self) -> None:
        rows: list[_Row] = []
        joining: list[tuple[GenerationJob, CacheKey | None]] = []  # taken from the queue
        joined: list[tuple[_Row, KVPairs]] = []  # prefilled, joining the batch before the next step
        kv = BatchedKV()
        widest = 0  # most rows decoded together since the last trim

        def join_and_step() -> None:
            """The prefilled rows join the batch, then every row decodes one token."""
            nonlocal widest
            if joined:  # one re-layout for all of them (model.kv_batch)
                adding = [(pairs, len(row.ids) - 1) for row, pairs in joined]
                rows.extend(row for row, _ in joined)
                joined.clear()
                kv.add(adding)
            if rows:
                widest = max(widest, len(rows))
                self._step(rows, kv)

        try:
            with torch.inference_mode():
                while (taken := self._take(len(rows))) is not None:
                    joining = taken
                    while joining:
                        if prefilled := self._prefill_between_steps(join_and_step, *joining[0]):
                            joined.append(prefilled)
                        joining.pop(0)
                    join_and_step()
                    if not rows and widest > 1 and not self._pending:
                        # Idle after a batch: its KV was re-laid out as rows joined and left,
                        # in buffers of every size, and glibc would keep those pages resident
                        # for good (model.heap). Not after lone replies: little is left behind,
                        # and the next prompt would pay to fault its working memory back in
                        # (measured: a follow-up's first token 0.31 -> 0.41 s on an AMD EPYC).
                        return_freed_memory()
                        widest = 0
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            log.exception("decode loop failed")
            with self._lock:
                stranded = [r.job for r in rows] + [r.job for r, _ in joined]
                stranded += [job for job, _ in joining] + [job for job, _ in self._pending]
                self._pending.clear()
                self._thread = None
            for job in stranded:
                self._fail(job, exc)

    def _prefill_between_steps(
        self, between: Callable[[], None], job: GenerationJob, key: CacheKey | None
    ) -> tuple[_Row, KVPairs] | None:
        """Prefill a joining job chunk by chunk, calling `between` between chunks (the rows that
        are ready join and decode a step: a long prompt does not hold them up for all of it)."""
        prefill = self._prefill(job, key)
        while True:
            try:
                next(prefill)
            except StopIteration as finished:
                return finished.value
            between()

    def _prefill(
        self, job: GenerationJob, key: CacheKey | None
    ) -> Generator[None, None, tuple[_Row, KVPairs] | None]:
        """Prefill a joining job and hand it its first token; its row and KV if it goes on.

        A prompt longer than the chunk is prefilled a chunk at a time, yielding between chunks:
        one user's long prompt (seconds of prefill) stops the running replies for a chunk's worth,
        not for all of it; a cancel is honoured between chunks too."""
        if job.cancelled.is_set():
            job.done.set()
            return None
        row = _Row(job, key, list(job.input_ids))
        try:
            hit = self._prefix_cache.take(key, row.ids) if self._prefix_cache and key else None
            reused = hit.tokens if hit else 0
            job.stats.extra["cached_prompt_tokens"] = float(reused)
            cache = slack_cache(hit.kv if hit else None, self._kv_dtype)
            for start in range(reused, len(row.ids), self._prompt_chunk):
                if start > reused:
                    yield
                    if job.cancelled.is_set():  # what was prefilled stays cached
                        self._finish(row, cache_pairs(cache), covered=start)
                        return None
                stop = min(start + self._prompt_chunk, len(row.ids))
                self._set_threads("prompt")
                chunk = row.ids[start:stop]
                logits = prefill_chunk(self._model, chunk, start, cache, self._prompt_dtype)
            token = choose_token(logits[0, -1], row.ids, job.sampling, self._top_k)
        except Exception as exc:
            self._fail(job, exc)
            return None
        pairs = cache_pairs(cache)
        if not self._emit(row, token):
            self._finish(row, pairs)
            return None
        return row, pairs

    def _step(self, rows: list[_Row], kv: BatchedKV) -> None:
        """Drop cancelled rows, then one forward pass for all: each row gets one token."""
        keep = [i for i, row in enumerate(rows) if not row.job.cancelled.is_set()]
        self._leave(rows, kv, keep)
        if not rows:
            return
        self._set_threads("decode")
        for row in rows:  # how many decoded together: the batching a caller can observe
            extra = row.job.stats.extra
            extra["max_batch"] = max(extra.get("max_batch", 0.0), float(len(rows)))
        kv.make_room()
        mask, positions = kv.step_inputs()
        try:
            out = self._model(
                input_ids=torch.tensor([[row.ids[-1]] for row in rows], dtype=torch.long),
                attention_mask=mask,
                position_ids=positions,
                cache=kv.cache,  # grows by one column per row, in place
                use_cache=True,
            )
            kv.advance()
            keep = [
                i
                for i, row in enumerate(rows)
                if self._emit(
                    row, choose_token(out.logits[i, -1], row.ids, row.job.sampling, self._top_k)
                )
            ]
        except Exception as exc:
            for row in rows:
                self._fail(row.job, exc)
            rows.clear()
            kv.keep([])
            return
        self._leave(rows, kv, keep)

    def _leave(self, rows: list[_Row], kv: BatchedKV, keep: list[int]) -> None:
        if len(keep) == len(rows):
            return
        kept = set(keep)
        for i, row in enumerate(rows):
            if i not in kept:
                self._finish(row, kv.row(i, NEXT_MESSAGE_ROOM) if self._wants_cache(row) else [])
        order = kv.keep(keep)  # the kept rows' new order in the batch (model.kv_batch)
        rows[:] = [rows[i] for i in order]

    def _emit(self, row: _Row, token: int) -> bool:
        """Hand the token to the caller; True if the row goes on decoding."""
        row.ids.append(token)
        row.job.on_token(token)
        return not (
            token in self._eos_ids
            or row.job.stats.completion_tokens >= row.job.sampling.max_new_tokens
            or row.job.cancelled.is_set()
        )

    def _wants_cache(self, row: _Row) -> bool:
        return self._prefix_cache is not None and row.key is not None

    def _finish(self, row: _Row, kv_pairs: KVPairs, covered: int | None = None) -> None:
        """The job is done; its conversation's KV (this row's own tensors, covering its first
        `covered` ids, by default all but the last) goes to the prefix cache with room for the
        next message. Only a reply that ended at its prefill lacks that room (the prefill's spare
        32): without it a longer next message first copied the whole conversation (+~20 ms after
        1,500 tokens on an AMD EPYC)."""
        if self._wants_cache(row):
            covered = len(row.ids) - 1 if covered is None else covered
            kept = with_room_for(kv_pairs, NEXT_MESSAGE_ROOM)
            self._prefix_cache.put(row.key, row.ids[:covered], kept)
        row.job.done.set()

    def _fail(self, job: GenerationJob, exc: BaseException) -> None:
        job.failure = exc
        job.done.set()

    def _set_threads(self, phase: str) -> None:
        if torch.get_num_threads() != self._threads[phase]:
            torch.set_num_threads(self._threads[phase])
