"""The remote engine: generation on an OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama).

Same contract as the local engine: stream() admits through an AdmissionGate by expected wait (or
refuses at once with EngineBusy) and returns a stream; iterating it waits in line if queued, then
opens a streaming chat completion with the `openai` client in the caller's thread, which also ends
it. cancel(), closing the iterator and close() shut the HTTP socket down, so the server sees the
disconnect and stops.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import openai

from model.admission import AdmissionGate, Ticket
from model.engine import EngineBusy, EngineClosed, EngineError, PromptTooLong, QueuePlace
from model.openai_settings import OpenAISettings
from model.prompt import build_prompt
from model.sampling import SamplingParams, resolve_sampling
from model.settings import GenerationSettings
from model.types import (
    ChatMessage,
    EngineLoad,
    FinishReason,
    GenerationRequest,
    GenerationStats,
    TextDelta,
)

log = logging.getLogger("chat.engine.openai")

_FINISH = {"stop": "stop", "length": "length"}  # anything else (content_filter, ...) ends as "stop"
_TOO_LONG_HINTS = (
    "context length",
    "context_length",
    "maximum context",
    "too long",
    "too many tokens",
)


class EngineUnavailable(EngineError):
    user_message = (
        "The model server is not responding right now. Please try again in a few minutes."
    )


class ApproximateTokenCounter:
    """Stands in for a tokenizer in model.prompt.build_prompt: the server's tokenizer is not here.

    Estimate: ASCII text at `ascii_chars_per_token` characters per token (BPE vocabularies average
    about 4 for English), every other character one token (Qwen spends about one per CJK character,
    so this errs long), plus 5 tokens of ChatML framing per message and 3 for the reply header.
    The server still enforces its own context limit; this only decides which old turns to drop.
    """

    def __init__(self, ascii_chars_per_token: float) -> None:
        self._ascii_chars_per_token = ascii_chars_per_token

    def count(self, conversation: Sequence[dict[str, str]]) -> int:
        total = 3
        for message in conversation:
            text = message["content"]
            ascii_chars = sum(1 for c in text if c.isascii())
            total += 5 + math.ceil(ascii_chars / self._ascii_chars_per_token)
            total += len(text) - ascii_chars
        return total

    def apply_chat_template(self, conversation: Sequence[dict[str, str]], **_: Any) -> list[int]:
        return [0] * self.count(conversation)


class _Slot:
    """One admission (a running slot or a place in line), given back exactly once.

    States: queued -> waiting (a thread is inside wait_reserved) -> admitted -> done. While
    waiting, the waiting thread owns the place, so give_back() from cancel() leaves it alone.
    """

    def __init__(self, gate: AdmissionGate, ticket: Ticket | None) -> None:
        self._gate = gate
        self._ticket = ticket  # None: admitted at once
        self._state = "admitted" if ticket is None else "queued"
        self._admitted_at = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, cancelled: threading.Event) -> None:
        """Turn a place in line into a slot; raises EngineBusy/EngineClosed (the place is then gone)."""
        with self._lock:
            if self._state == "admitted":
                return
            if self._state == "done" or self._ticket is None:
                raise EngineBusy()  # given back already: cancelled before it was iterated
            self._state = "waiting"
        try:
            self._gate.wait_reserved(self._ticket, cancelled)
        except EngineError:
            with self._lock:
                self._state = "done"  # wait_reserved gave the place back
            raise
        with self._lock:
            self._state = "admitted"
            self._admitted_at = time.monotonic()

    def place(self) -> QueuePlace | None:
        if self._ticket is None:
            return None
        return self._gate.place(self._ticket)

    def give_back(self) -> None:
        with self._lock:
            state = self._state
            if state in ("done", "waiting"):
                return
            self._state = "done"
        if state == "admitted":
            self._gate.release(held=time.monotonic() - self._admitted_at)
        elif self._ticket is not None:
            self._gate.unreserve(self._ticket)


class OpenAIStream:
    """The caller's side of one remote generation: iterate once for TextDelta; cancel() disconnects.

    The iterating thread is the one that runs the generation, so it is the one that ends it:
    `final` is set as the iteration ends, however it ends.
    """

    def __init__(
        self,
        engine: OpenAIEngine,
        messages: list[dict[str, str]],
        sampling: SamplingParams,
        slot: _Slot,
        *,
        request_id: str,
        prompt_tokens: int,
        dropped_messages: int,
    ) -> None:
        self._engine, self._messages, self._sampling, self._slot = engine, messages, sampling, slot
        self.request_id = request_id
        self._dropped_messages = dropped_messages
        # Progress, written by the iterating thread only; frozen into `final` at the end.
        self._prompt_tokens = prompt_tokens  # the estimate, until the server reports usage
        self._completion_tokens = 0
        self._time_to_first_token: float | None = None
        self._finish_reason: FinishReason = "stop"  # unless the server says otherwise
        self.final: GenerationStats | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._iterated = False
        self.shutting_down = False
        self.created = time.monotonic()

    def __iter__(self) -> Iterator[TextDelta]:
        if self._iterated:
            raise RuntimeError("a generation stream can only be iterated once")
        self._iterated = True
        return self._deltas()

    def cancel(self) -> None:
        """Stop now: a queued request leaves the queue, a running one's connection is shut down."""
        self._cancelled.set()
        with self._lock:
            if self._socket is not None:
                _shutdown(self._socket)
        self._slot.give_back()  # the server stops now, so the slot is free even if nobody reads on
        self._engine.wake_queue()

    def queue_place(self) -> QueuePlace | None:
        """Its place in line until it is first and a slot frees (while it is being iterated)."""
        return self._slot.place()

    def _deltas(self) -> Iterator[TextDelta]:
        response, completed, failed = None, False, False
        try:
            try:
                self._slot.wait(self._cancelled)
            except EngineBusy:
                if self.shutting_down:
                    raise EngineClosed() from None
                if not self._cancelled.is_set():
                    raise
                return  # cancelled while queued
            if self._cancelled.is_set():
                return
            response = self._engine.open(self._messages, self._sampling, self.request_id)
            with self._lock:
                self._socket = _socket_of(response)
                if self._cancelled.is_set() and self._socket is not None:
                    _shutdown(self._socket)
            yield from self._relay(response)
            completed = not self._cancelled.is_set()
            if self.shutting_down:
                raise EngineClosed()
        except EngineError:
            failed = True
            raise
        except Exception:  # e.g. a malformed chunk: never show internals to the user
            if self._cancelled.is_set() and not self.shutting_down:
                return  # the connection we shut down, read on after a cancel
            failed = True
            if self.shutting_down:
                raise EngineClosed() from None
            log.exception("remote generation failed", extra={"request_id": self.request_id})
            error = EngineError(f"generation {self.request_id} failed")
            error.user_message = f"{EngineError.user_message} (reference {self.request_id})"
            raise error from None
        finally:
            # Normal end, error, cancel() and close()/GeneratorExit (stop button, tab closed) all land here.
            if response is not None:
                with self._lock:
                    sock, self._socket = self._socket, None
                if not completed and sock is not None:
                    _shutdown(sock)  # the server must see the disconnect, not a pooled connection
                response.close()
            self._slot.give_back()
            if failed:
                reason: FinishReason = "error"
            else:
                reason = self._finish_reason if completed else "cancelled"
            self.final = GenerationStats(
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
                time_to_first_token=self._time_to_first_token,
                total_time=time.monotonic() - self.created,
                finish_reason=reason,
                dropped_messages=self._dropped_messages,
                request_id=self.request_id,
            )
            self._engine.finished(self, self.final)

    def _relay(self, response: openai.Stream) -> Iterator[TextDelta]:
        counted = 0
        try:
            for chunk in response:
                if self._cancelled.is_set():
                    return
                if chunk.usage is not None:
                    self._prompt_tokens = chunk.usage.prompt_tokens
                    self._completion_tokens = chunk.usage.completion_tokens
                choice = chunk.choices[0] if chunk.choices else None
                if choice is None:
                    continue
                if choice.delta.content:
                    if self._time_to_first_token is None:
                        self._time_to_first_token = time.monotonic() - self.created
                    counted += 1  # servers send about one chunk per token; usage corrects it
                    self._completion_tokens = max(self._completion_tokens, counted)
                    yield TextDelta(choice.delta.content)
                if choice.finish_reason:
                    self._finish_reason = _FINISH.get(choice.finish_reason, "stop")  # type: ignore[assignment]
        except openai.APIError as exc:
            if self._cancelled.is_set():
                return  # our own shutdown of the socket
            raise self._engine.translate(exc, self.request_id) from None


class OpenAIEngine:
    """Engine protocol over an OpenAI-compatible chat completions endpoint."""

    def __init__(
        self,
        settings: OpenAISettings,
        generation: GenerationSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings, self._generation, self._clock = settings, generation, clock
        self._gate = AdmissionGate(
            generation.max_concurrent,
            generation.max_queue,
            generation.queue_timeout_seconds,
            max_wait=generation.max_wait_seconds,
        )
        key = settings.api_key.get_secret_value() if settings.api_key else "none"
        # No retries: a retried stream could run twice; the user retries instead.
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=key,
            max_retries=0,
            timeout=openai.Timeout(
                settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
        )
        self._counter = ApproximateTokenCounter(settings.ascii_chars_per_token)
        self._lock = threading.Lock()
        self._ready_lock = threading.Lock()
        self._ready: tuple[float, bool] | None = None
        self._streams: weakref.WeakSet[OpenAIStream] = weakref.WeakSet()
        self._closed = False

    @property
    def load(self) -> EngineLoad:
        return EngineLoad(waiting=self._gate.waiting, running=self._gate.running)

    def wake_queue(self) -> None:
        """Let queued streams re-check whether they were cancelled."""
        self._gate.wake()

    def stream(self, request: GenerationRequest) -> OpenAIStream:
        """Admit the request (or raise EngineBusy / PromptTooLong / EngineClosed); nothing is sent yet."""
        if self._closed:
            raise EngineClosed()
        turns = [m for m in request.messages if m.role != "system"]
        prompt = build_prompt(
            self._counter,
            self._generation.system_prompt,
            turns,
            self._generation.max_input_tokens,
            self._generation.max_prompt_chars,
        )
        messages = _as_dicts(self._generation.system_prompt, turns[prompt.dropped_messages :])
        slot = _Slot(self._gate, self._gate.reserve())
        stream = OpenAIStream(
            self,
            messages,
            resolve_sampling(request, self._generation),
            slot,
            # Sent as X-Request-Id: llama-cpp-python's server answers 400 unless it is a UUID.
            request_id=str(uuid.uuid4()),
            prompt_tokens=len(prompt.input_ids),
            dropped_messages=prompt.dropped_messages,
        )
        with self._lock:
            if self._closed:  # close() ran meanwhile: it must not miss this stream
                slot.give_back()
                raise EngineClosed()
            self._streams.add(stream)
        # A stream dropped without being iterated still gives its slot back.
        weakref.finalize(stream, slot.give_back)
        return stream

    def ready(self) -> bool:
        """GET /models with a short timeout, answered from a cache for a few seconds; never generates."""
        with self._ready_lock:
            now = self._clock()
            if (
                self._ready is not None
                and now - self._ready[0] < self._settings.ready_cache_seconds
            ):
                return self._ready[1] and not self._closed
            try:
                client = self._client.with_options(timeout=self._settings.ready_timeout_seconds)
                client.models.list()
                ok = True
            except openai.APIError as exc:
                log.warning("model server not ready", extra={"error": _describe(exc)})
                ok = False
            self._ready = (now, ok)
            return ok and not self._closed

    def close(self) -> None:
        """Refuse new requests, disconnect running and queued generations, release the client."""
        with self._lock:
            self._closed = True
            streams = list(self._streams)
        for stream in streams:
            stream.shutting_down = True
            stream.cancel()
        self._gate.close()
        self._client.close()

    def open(self, messages: list[dict[str, str]], sampling: SamplingParams, request_id: str):
        """Send the streaming request; the response headers have arrived when this returns."""
        options: dict[str, Any] = {"temperature": sampling.temperature}
        if not sampling.greedy:
            options["top_p"] = sampling.top_p
        try:
            return self._client.chat.completions.create(
                model=self._settings.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=sampling.max_new_tokens,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"X-Request-Id": request_id},  # correlates with the server's log
                **options,
            )
        except openai.APIError as exc:
            raise self.translate(exc, request_id) from None

    def translate(self, exc: openai.APIError, request_id: str) -> EngineError:
        """Map a client error to an EngineError whose message is safe to show (no URL, no key)."""
        log.warning(
            "remote generation failed", extra={"request_id": request_id, "error": _describe(exc)}
        )
        if isinstance(exc, openai.APIConnectionError):
            return EngineUnavailable(f"generation {request_id}: server unreachable")
        status = getattr(exc, "status_code", None)
        if status == 429:
            return EngineBusy(
                f"generation {request_id}: server busy", retry_after=_retry_after(exc)
            )
        if status in (400, 413, 422) and any(h in str(exc).lower() for h in _TOO_LONG_HINTS):
            return PromptTooLong(f"generation {request_id}: server says the prompt is too long")
        error = EngineError(f"generation {request_id} failed ({status})")
        error.user_message = f"{EngineError.user_message} (reference {request_id})"
        return error

    def finished(self, stream: OpenAIStream, stats: GenerationStats) -> None:
        # Counts and timings only: never prompts, replies or user identities.
        with self._lock:
            self._streams.discard(stream)
        log.info(
            "generation done",
            extra={
                "request_id": stats.request_id,
                "finish_reason": stats.finish_reason,
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "ttft_s": stats.time_to_first_token,
                "total_s": round(stats.total_time, 3),
            },
        )


def _as_dicts(system_prompt: str, turns: Sequence[ChatMessage]) -> list[dict[str, str]]:
    # The system prompt comes from settings only: users' system messages were filtered out.
    return [{"role": "system", "content": system_prompt}] + [
        {"role": m.role, "content": m.content} for m in turns
    ]


def _socket_of(response: openai.Stream) -> socket.socket | None:
    stream = response.response.extensions.get("network_stream")
    return stream.get_extra_info("socket") if stream is not None else None


def _shutdown(sock: socket.socket) -> None:
    # shutdown() (unlike close()) wakes a thread blocked in recv and sends FIN to the server.
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _retry_after(exc: openai.APIError) -> int | None:
    """The server's Retry-After in whole seconds, when it sent one as a number."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after", "") if response is not None else ""
    return max(1, int(value)) if value.strip().isdigit() else None


def _describe(exc: openai.APIError) -> str:
    """Error class and HTTP status for the log: never the body, which may echo the prompt."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" {status}" if status else "")
