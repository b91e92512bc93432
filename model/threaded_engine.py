"""The real engine: admitted requests decode together on one scheduler thread, tokens streamed.

stream() is quick and never blocks: it builds the prompt, takes a slot or a place in the bounded
queue (or refuses at once with EngineBusy), and starts a worker thread named after the request.
The worker waits for a slot if queued, hands the job to the DecodeScheduler (which prefills it,
reusing the conversation's prefix cache, and decodes it in a batch with the other running jobs,
dropping it within a step of a cancel), waits for the job to end, then releases the slot. The
caller decodes incrementally.

Torch runs only on the scheduler thread, never on the main thread, the event loop or the workers:
every native thread that runs torch ops keeps an OpenMP team, and once libgomp manages more
threads than cores it throttles its spin-wait (measured: ~20% slower decoding on 2 cores).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from model.admission import AdmissionGate
from model.decode_scheduler import DecodeScheduler
from model.engine import EngineBusy, EngineClosed, EngineError
from model.generation_job import END, GenerationJob
from model.kv_dtype import resolve_kv_dtype, resolve_prompt_dtype, use_engine_attention
from model.lean_forward import lean_forward
from model.loader import LoadedModel
from model.prefix_cache import PrefixCache
from model.prompt import build_prompt
from model.sampling import resolve_sampling
from model.settings import GenerationSettings, ModelSettings
from model.stream_decoder import IncrementalDecoder
from model.types import FinishReason, GenerationRequest, GenerationStats, TextDelta

log = logging.getLogger("chat.engine")


@dataclass(frozen=True)
class PreparedForward:
    """The callable the scheduler runs a loaded model through, and the attention dtypes it uses."""

    model: Any  # model.lean_forward's LeanQwen2, or the transformers model itself
    kv_dtype: torch.dtype  # what the KV cache stores (model.kv_dtype)
    prompt_dtype: torch.dtype | None  # a prompt's attention products over cached tokens


def prepare_forward(loaded: LoadedModel) -> PreparedForward:
    """Set the model's attention up for its KV dtype on this CPU and wrap it in the lean forward
    where that covers it: the path every prompt and decoding step of the engine takes (and what
    bench/perplexity.py measures answers on)."""
    tuning = loaded.settings or ModelSettings()
    model = loaded.model
    model_dtype = getattr(model, "dtype", torch.float32)
    quantization = loaded.quantization  # as loaded, whatever settings an engine is tuned with
    kv_dtype = resolve_kv_dtype(tuning.kv_cache_dtype, quantization, model_dtype)
    prompt_dtype = resolve_prompt_dtype(tuning.prompt_attention_dtype, quantization, kv_dtype)
    if hasattr(model, "set_attn_implementation"):  # a transformers model (tests script others)
        use_engine_attention(model)  # also: each row of a batched step attends as if alone
    # Same numbers, less Python per step (model.lean_forward).
    return PreparedForward(lean_forward(model) or model, kv_dtype, prompt_dtype)


class ThreadedStream:
    """The caller's side of one generation: iterate once for TextDelta; cancel() stops the worker."""

    def __init__(self, job: GenerationJob, tokenizer: object) -> None:
        self.stats: GenerationStats = job.stats
        self._job = job
        self._tokenizer = tokenizer
        self._iterated = False

    def __iter__(self) -> Iterator[TextDelta]:
        if self._iterated:
            raise RuntimeError("a generation stream can only be iterated once")
        self._iterated = True
        return self._deltas()

    def _deltas(self) -> Iterator[TextDelta]:
        decoder = IncrementalDecoder(self._tokenizer)
        try:
            while (item := self._job.tokens.get()) is not END:
                if text := decoder.push(item):
                    yield TextDelta(text)
            if text := decoder.flush():
                yield TextDelta(text)
            if self._job.error is not None:
                raise self._job.error
        finally:
            # Reached on normal end (no-op), on an error, and on close()/GeneratorExit (stop, tab closed).
            self._job.cancel()

    def cancel(self) -> None:
        """Stop generating after the current decoding step; iteration then ends."""
        self._job.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread has ended; True if it has."""
        thread = self._job.thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


class ThreadedEngine:
    """Engine protocol over a loaded transformers model; batched decoding, per-conversation KV reuse.

    Tuning (threads, prefix cache size, batch size) comes from `loaded.settings` ([model]).
    """

    def __init__(self, loaded: LoadedModel, generation: GenerationSettings) -> None:
        self._loaded = loaded
        self._settings = generation
        self._gate = AdmissionGate(
            generation.max_concurrent, generation.max_queue, generation.queue_timeout_seconds
        )
        self._lock = threading.Lock()
        self._jobs: set[GenerationJob] = set()
        self._closed = False
        eos = loaded.model.generation_config.eos_token_id or loaded.tokenizer.eos_token_id
        self._eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        tuning = loaded.settings or ModelSettings()
        threads = tuning.threads or torch.get_num_threads()
        mb = tuning.prefix_cache_mb
        self.prefix_cache = PrefixCache(mb * 2**20) if mb > 0 else None
        forward = prepare_forward(loaded)
        self.kv_dtype, self.prompt_dtype = forward.kv_dtype, forward.prompt_dtype
        self._scheduler = DecodeScheduler(
            forward.model,
            eos_ids=self._eos_ids,
            max_batch=min(tuning.max_batch_size, generation.max_concurrent),
            prefix_cache=self.prefix_cache,
            prompt_threads=tuning.prompt_threads or threads,
            decode_threads=tuning.decode_threads or threads,
            kv_dtype=self.kv_dtype,
            prompt_dtype=self.prompt_dtype,
            prompt_chunk=tuning.prompt_chunk_tokens,
        )

    @property
    def gate(self) -> AdmissionGate:
        return self._gate

    def stream(self, request: GenerationRequest) -> ThreadedStream:
        """Admit the request (or raise EngineBusy / PromptTooLong / EngineClosed) and start it."""
        if self._closed:
            raise EngineClosed()
        prompt = build_prompt(
            self._loaded.tokenizer,
            self._settings.system_prompt,
            request.messages,
            self._settings.max_input_tokens,
            self._settings.max_prompt_chars,
        )
        request_id = uuid.uuid4().hex[:12]
        stats = GenerationStats(
            prompt_tokens=len(prompt.input_ids),
            dropped_messages=prompt.dropped_messages,
            request_id=request_id,
        )
        job = GenerationJob(
            request_id,
            prompt.input_ids,
            resolve_sampling(request, self._settings),
            stats,
            wake=self._gate.wake,
        )
        admitted = self._gate.reserve()
        try:
            with self._lock:
                if self._closed:  # close() ran meanwhile: it must not miss this job
                    raise EngineClosed()
                self._jobs.add(job)
            key = (request.user_key, request.conversation_id) if request.conversation_id else None
            job.thread = threading.Thread(
                target=self._run,
                args=(job, admitted, key),
                name=f"generate-{request_id}",
                daemon=True,
            )
            job.thread.start()
        except BaseException:
            with self._lock:
                self._jobs.discard(job)
            if admitted:
                self._gate.release()
            else:
                self._gate.unreserve()
            raise
        stream = ThreadedStream(job, self._loaded.tokenizer)
        # A stream dropped without being iterated or closed still stops its worker.
        weakref.finalize(stream, job.cancel)
        return stream

    def ready(self) -> bool:
        """Model loaded and engine open; never generates."""
        return not self._closed and self._loaded.model is not None

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new requests, stop running and queued generations, wait for the workers."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs)
        for job in jobs:
            job.shutting_down = True
            job.cancel()
        self._gate.close()
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        # The decoder thread ends once its cancelled rows are gone: torch must not be running at
        # interpreter exit.
        self._scheduler.stop(max(0.0, deadline - time.monotonic()))

    def _run(self, job: GenerationJob, admitted: bool, key: tuple[str, str] | None) -> None:
        try:
            if not admitted:
                self._gate.wait_reserved(job.cancelled)
                admitted = True
            if not job.cancelled.is_set():
                self._scheduler.submit(job, key)
                job.done.wait()
                if job.failure is not None:
                    raise job.failure
            job.stats.finish_reason = self._finish_reason(job)
        except (EngineBusy, EngineClosed) as exc:  # from the queue: cancelled, closing or timed out
            if job.cancelled.is_set():
                job.stats.finish_reason = "cancelled"
            else:
                job.stats.finish_reason, job.error = "error", exc
        except Exception:
            log.exception("generation failed", extra={"request_id": job.request_id})
            job.stats.finish_reason = "error"
            job.error = EngineError(f"generation {job.request_id} failed")
            job.error.user_message = f"{EngineError.user_message} (reference {job.request_id})"
        finally:
            if admitted:
                self._gate.release()
            if job.shutting_down and job.error is None:
                job.error = EngineClosed()
            job.stats.total_time = time.monotonic() - job.created
            with self._lock:
                self._jobs.discard(job)
            self._log_done(job)
            job.tokens.put(END)

    def _finish_reason(self, job: GenerationJob) -> FinishReason:
        if job.last_token in self._eos_ids:
            return "stop"
        if job.stats.completion_tokens >= job.sampling.max_new_tokens:
            return "length"
        return "cancelled" if job.cancelled.is_set() else "length"

    def _log_done(self, job: GenerationJob) -> None:
        stats = job.stats  # counts and timings only: never prompts, replies or user identities
        log.info(
            "generation done",
            extra={
                "request_id": job.request_id,
                "finish_reason": stats.finish_reason,
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "ttft_s": stats.time_to_first_token,
                "cached_prompt_tokens": stats.extra.get("cached_prompt_tokens", 0),
                "total_s": round(stats.total_time, 3),
            },
        )
