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

It also owns admission, so one place decides who runs and who waits: submit() admits a request
into the waiting line if its expected wait is within max_wait (model.admission: its place in line
over the rows, in generations of the recent average length, which every row that leaves updates)
or refuses it at once (EngineBusy with retry_after), and the decoder thread moves queued requests
into the batch as rows leave, drops the queued ones that were cancelled or waited too long, and
ends every request it admitted, whichever way it ends: no thread waits per request. A waiting
request holds its prompt's token ids only; its KV exists from its prefill on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import torch

from model.admission import WaitEstimate
from model.engine import EngineClosed, EngineError, QueuePlace
from model.generation_job import GenerationJob
from model.heap import return_freed_memory
from model.kv_batch import BatchedKV, cache_pairs
from model.kv_dtype import prompt_products
from model.prefix_cache import CacheKey, PrefixCache
from model.sampling import choose_token
from model.slack_cache import KVPairs, slack_cache, with_room_for
from model.types import EngineLoad, FinishReason, GenerationStats

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
    ending: FinishReason | None = None  # set when the row leaves the batch
    started: float = field(default_factory=time.monotonic)  # it took a row (its prefill began)


class DecodeScheduler:
    def __init__(
        self,
        model: object,
        *,
        eos_ids: frozenset[int],
        max_batch: int,
        max_queue: int,
        queue_timeout: float = 300.0,
        max_wait: float = math.inf,
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
        self._max_batch = max_batch  # rows decoded together: the requests running at once
        self._capacity = max_batch + max_queue  # running and waiting
        self._queue_timeout = queue_timeout
        self._estimate = WaitEstimate(max_batch, max_wait)  # guarded by self._lock
        self._prefix_cache = prefix_cache
        self._threads = {"prompt": prompt_threads, "decode": decode_threads}
        self._top_k = int(getattr(model.generation_config, "top_k", None) or 0)
        self._lock = threading.Lock()
        self._pending: deque[tuple[GenerationJob, CacheKey | None]] = deque()  # waiting, in order
        self._live: set[GenerationJob] = set()  # admitted and not ended: running or waiting
        self._work = threading.Condition(self._lock)  # notified on submit and on close
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def load(self) -> EngineLoad:
        with self._lock:
            waiting = len(self._pending)
            return EngineLoad(waiting=waiting, running=len(self._live) - waiting)

    def submit(self, job: GenerationJob, key: CacheKey | None) -> None:
        """Admit a job, or raise EngineBusy (its wait would pass max_wait, or the line is full)
        or EngineClosed. It waits in line until the batch has room; however it ends, the
        decoder thread ends it (job.finish)."""
        with self._lock:
            if self._closed:
                raise EngineClosed()
            if len(self._live) >= self._capacity:
                raise self._estimate.busy("the line is full")
            # Its place in line: everyone admitted (running, joining, waiting) is ahead of it.
            self._estimate.admit(len(self._live) + 1 - self._max_batch)
            self._live.add(job)
            self._pending.append((job, key))
            if self._thread is None:  # the first request, or the first since a failure
                self._thread = threading.Thread(
                    target=self._loop, name="engine-decoder", daemon=True
                )
                self._thread.start()
            self._work.notify()

    def place(self, job: GenerationJob) -> QueuePlace | None:
        """`job`'s place while it waits for a row; None once it has one or has ended."""
        with self._lock:
            for ahead, (waiting, _) in enumerate(self._pending):
                if waiting is job:
                    taken = len(self._live) - len(self._pending)  # running or joining
                    return self._estimate.place(ahead, taken + ahead + 1 - self._max_batch)
        return None

    def close(self, timeout: float) -> None:
        """Refuse new jobs, cancel the admitted ones (their callers hear EngineClosed), and wait
        for the decoder thread, which ends once they have left."""
        with self._lock:
            self._closed = True
            jobs = list(self._live)
            self._work.notify()
            thread = self._thread
        for job in jobs:
            job.shutting_down = True
            job.cancel()
        if thread is not None:
            thread.join(timeout)

    def _take(self, running: int) -> list[tuple[GenerationJob, CacheKey | None]] | None:
        """The queued jobs that fit in the batch, waiting for one while idle; None: stop."""
        with self._lock:
            while not running and not self._pending:
                if self._closed:
                    self._thread = None
                    return None
                self._work.wait()
            return [
                self._pending.popleft()
                for _ in range(min(len(self._pending), self._max_batch - running))
            ]

    def _drop_waiting(self) -> None:
        """End the queued jobs that were cancelled or have waited longer than the queue timeout."""
        if not self._pending:  # a glance without the lock: a job missed now is seen next step
            return
        too_old = time.monotonic() - self._queue_timeout
        with self._lock:
            waiting = list(self._pending)
            dropped = [job for job, _ in waiting if job.cancelled.is_set() or job.created < too_old]
            self._pending = deque(item for item in waiting if item[0] not in dropped)
        for job in dropped:
            if job.cancelled.is_set():
                self._end(job, "cancelled")
            else:
                with self._lock:
                    busy = self._estimate.busy("waited past the queue timeout")
                self._end(job, "error", busy)

    def _end(
        self,
        job: GenerationJob,
        reason: FinishReason,
        error: EngineError | None = None,
        held: float | None = None,
    ) -> None:
        """The job leaves admission (`held`: seconds it held a row, which the wait estimate
        learns from), then its stats are frozen and its reader woken."""
        with self._lock:
            self._live.discard(job)
            if held is not None:
                self._estimate.observe(held)
        if (final := job.finish(reason, error)) is not None:
            _log_done(final)

    def _loop(self) -> None:
        rows: list[_Row] = []
        joined: list[tuple[_Row, KVPairs]] = []  # prefilled, joining the batch before the next step
        kv = BatchedKV()
        widest = 0  # most rows decoded together since the last trim

        def join_and_step() -> None:
            """The prefilled rows join the batch, then every row decodes one token."""
            nonlocal widest
            self._drop_waiting()
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
                while (joining := self._take(len(rows))) is not None:
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
                stranded = list(self._live)  # running, joining and waiting alike
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
            self._end(job, "cancelled")
            return None
        row = _Row(job, key, list(job.input_ids))
        try:
            hit = self._prefix_cache.take(key, row.ids) if self._prefix_cache and key else None
            reused = hit.tokens if hit else 0
            job.cached_prompt_tokens = reused
            cache = slack_cache(hit.kv if hit else None, self._kv_dtype)
            for start in range(reused, len(row.ids), self._prompt_chunk):
                if start > reused:
                    yield
                    if job.cancelled.is_set():  # what was prefilled stays cached
                        self._finish(row, cache_pairs(cache), "cancelled", covered=start)
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
        if (ending := self._emit(row, token)) is not None:
            self._finish(row, pairs, ending)
            return None
        return row, pairs

    def _step(self, rows: list[_Row], kv: BatchedKV) -> None:
        """Drop cancelled rows, then one forward pass for all: each row gets one token."""
        for row in rows:
            if row.job.cancelled.is_set():
                row.ending = "cancelled"
        self._leave(rows, kv)
        if not rows:
            return
        self._set_threads("decode")
        for row in rows:  # how many decoded together: the batching a caller can observe
            row.job.max_batch = max(row.job.max_batch, len(rows))
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
            for i, row in enumerate(rows):
                token = choose_token(out.logits[i, -1], row.ids, row.job.sampling, self._top_k)
                row.ending = self._emit(row, token)
        except Exception as exc:
            for row in rows:
                self._fail(row.job, exc)
            rows.clear()
            kv.keep([])
            return
        self._leave(rows, kv)

    def _leave(self, rows: list[_Row], kv: BatchedKV) -> None:
        """The rows with an ending leave the batch and end."""
        keep = [i for i, row in enumerate(rows) if row.ending is None]
        if len(keep) == len(rows):
            return
        for i, row in enumerate(rows):
            if row.ending is not None:
                pairs = kv.row(i, NEXT_MESSAGE_ROOM) if self._wants_cache(row) else []
                self._finish(row, pairs, row.ending)
        order = kv.keep(keep)  # the kept rows' new order in the batch (model.kv_batch)
        rows[:] = [rows[i] for i in order]

    def _emit(self, row: _Row, token: int) -> FinishReason | None:
        """Hand the token to the caller; why the row ends with it, or None if it goes on."""
        row.ids.append(token)
        job = row.job
        job.on_token(token)
        if token in self._eos_ids:
            return "stop"
        if job.completion_tokens >= job.sampling.max_new_tokens:
            return "length"
        return "cancelled" if job.cancelled.is_set() else None

    def _wants_cache(self, row: _Row) -> bool:
        return self._prefix_cache is not None and row.key is not None

    def _finish(
        self, row: _Row, kv_pairs: KVPairs, reason: FinishReason, covered: int | None = None
    ) -> None:
        """The job is done; its conversation's KV (this row's own tensors, covering its first
        `covered` ids, by default all but the last) goes to the prefix cache with room for the
        next message. Only a reply that ended at its prefill lacks that room (the prefill's spare
        32): without it a longer next message first copied the whole conversation (+~20 ms after
        1,500 tokens on an AMD EPYC)."""
        if self._wants_cache(row):
            covered = len(row.ids) - 1 if covered is None else covered
            kept = with_room_for(kv_pairs, NEXT_MESSAGE_ROOM)
            self._prefix_cache.put(row.key, row.ids[:covered], kept)
        self._end(row.job, reason, held=time.monotonic() - row.started)

    def _fail(self, job: GenerationJob, exc: BaseException) -> None:
        """The job ends in an error that names it; the cause goes to the log, not to the user."""
        log.error("generation failed", exc_info=exc, extra={"request_id": job.request_id})
        error = EngineError(f"generation {job.request_id} failed")
        error.user_message = f"{EngineError.user_message} (reference {job.request_id})"
        self._end(job, "error", error)

    def _set_threads(self, phase: str) -> None:
        if torch.get_num_threads() != self._threads[phase]:
            torch.set_num_threads(self._threads[phase])


def _log_done(stats: GenerationStats) -> None:
    # Counts and timings only: never prompts, replies or user identities.
    log.info(
        "generation done",
        extra={
            "request_id": stats.request_id,
            "finish_reason": stats.finish_reason,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "ttft_s": stats.time_to_first_token,
            "cached_prompt_tokens": stats.cached_prompt_tokens,
            "total_s": round(stats.total_time, 3),
        },
    )
