"""The real engine: admitted requests decode together on one scheduler thread, tokens streamed.

stream() is quick and never blocks: it builds the prompt and hands the job to the DecodeScheduler,
which admits it into its waiting line by expected wait (or refuses at once with EngineBusy and a
retry_after), prefills it when the batch has room (reusing the conversation's prefix cache),
decodes it with the other running jobs, drops it within a step of a cancel, and ends it: the
frozen stats, then the end of the stream. The caller decodes incrementally.

Torch runs only on the scheduler thread, never on the main thread, the event loop or the callers'
threads: every native thread that runs torch ops keeps an OpenMP team, and once libgomp manages
more threads than cores it throttles its spin-wait (measured: ~20% slower decoding on 2 cores).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from model.decode_scheduler import DecodeScheduler
from model.engine import EngineClosed, QueuePlace
from model.generation_job import END, GenerationJob
from model.kv_dtype import resolve_kv_dtype, resolve_prompt_dtype, use_engine_attention
from model.lean_forward import lean_forward
from model.loader import LoadedModel
from model.prefix_cache import PrefixCache
from model.prompt import build_prompt
from model.sampling import resolve_sampling
from model.settings import GenerationSettings, ModelSettings
from model.stream_decoder import IncrementalDecoder
from model.torch_internals import check_supported
from model.types import EngineLoad, GenerationRequest, GenerationStats, TextDelta


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
    """The caller's side of one generation: iterate once for TextDelta; cancel() stops it."""

    def __init__(
        self,
        job: GenerationJob,
        tokenizer: object,
        place: Callable[[GenerationJob], QueuePlace | None] = lambda job: None,
    ) -> None:
        self._job = job
        self._tokenizer = tokenizer
        self._place = place
        self._iterated = False

    @property
    def final(self) -> GenerationStats | None:
        """The frozen stats, set by the decoder before it ends the stream's queue: there once the
        iteration has ended; None while the generation runs."""
        return self._job.final

    @property
    def generated_tokens(self) -> int:
        """Tokens sampled so far (a live count, for progress; `final` has the settled one)."""
        return self._job.completion_tokens

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
            # Reached on normal end (no-op), on an error, and on close()/GeneratorExit (stop, tab
            # closed). It does not wait for the end: a generator closed by the garbage collector
            # may be closed on the decoder thread itself.
            self._job.cancel()

    def cancel(self) -> None:
        """Stop generating after the current decoding step; iteration then ends."""
        self._job.cancel()

    def queue_place(self) -> QueuePlace | None:
        """Its place in the waiting line and expected wait; None once it has a row."""
        return self._place(self._job)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the generation has ended (`final` is set); True if it has."""
        return self._job.ended.wait(timeout)


class ThreadedEngine:
    """Engine protocol over a loaded transformers model; batched decoding, per-conversation KV reuse.

    Tuning (threads, prefix cache size, batch size) comes from `loaded.settings` ([model]).
    """

    def __init__(self, loaded: LoadedModel, generation: GenerationSettings) -> None:
        check_supported()
        self._loaded = loaded
        self._settings = generation
        self._closed = False
        eos = loaded.model.generation_config.eos_token_id or loaded.tokenizer.eos_token_id
        tuning = loaded.settings or ModelSettings()
        threads = tuning.threads or torch.get_num_threads()
        mb = tuning.prefix_cache_mb
        self.prefix_cache = PrefixCache(mb * 2**20) if mb > 0 else None
        forward = prepare_forward(loaded)
        self.kv_dtype, self.prompt_dtype = forward.kv_dtype, forward.prompt_dtype
        max_batch = min(tuning.max_batch_size, generation.max_concurrent)
        self._scheduler = DecodeScheduler(
            forward.model,
            eos_ids=frozenset(eos if isinstance(eos, list) else [eos]),
            max_batch=max_batch,
            # Requests admitted beyond the batch's rows wait for one like queued requests.
            max_queue=generation.max_queue + generation.max_concurrent - max_batch,
            queue_timeout=generation.queue_timeout_seconds,
            max_wait=generation.max_wait_seconds,
            prefix_cache=self.prefix_cache,
            prompt_threads=tuning.prompt_threads or threads,
            decode_threads=tuning.decode_threads or threads,
            kv_dtype=self.kv_dtype,
            prompt_dtype=self.prompt_dtype,
            prompt_chunk=tuning.prompt_chunk_tokens,
        )

    @property
    def load(self) -> EngineLoad:
        return self._scheduler.load

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
        job = GenerationJob(
            uuid.uuid4().hex[:12],
            prompt.input_ids,
            resolve_sampling(request, self._settings),
            dropped_messages=prompt.dropped_messages,
        )
        key = (request.user_key, request.conversation_id) if request.conversation_id else None
        self._scheduler.submit(job, key)
        stream = ThreadedStream(job, self._loaded.tokenizer, self._scheduler.place)
        # A stream dropped without being iterated or closed still stops its generation.
        weakref.finalize(stream, job.cancel)
        return stream

    def ready(self) -> bool:
        """Model loaded and engine open; never generates."""
        return not self._closed and self._loaded.model is not None

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new requests, stop running and queued generations, wait for the decoder thread:
        torch must not be running at interpreter exit."""
        self._closed = True
        self._scheduler.close(timeout)
