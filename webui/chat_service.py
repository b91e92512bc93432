"""One chat turn, independent of Gradio: checks, history, streaming, saving, audit."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from auth.identity import User
from auth.rate_limits import Limited
from auth.shared_state import SharedStateUnavailable
from auth.user_concurrency import GenerationInProgress
from model.engine import (
    Engine,
    EngineBusy,
    EngineClosed,
    EngineError,
    GenerationStream,
    PromptTooLong,
)
from model.settings import GenerationSettings
from model.types import ChatMessage, GenerationRequest, GenerationStats
from store.events import CHAT_REQUEST, PROMPT_BLOCKED, AuditEvent, AuditSink
from webui.i18n import text

log = logging.getLogger("chat.service")

Status = Literal["streaming", "complete", "stopped", "error", "refused"]


class History(Protocol):
    """What the chat turn needs from the per-user history (store.chat_history.ChatHistory)."""

    def create_conversation(self, owner_key: str, title: str) -> Any: ...

    def get_conversation(self, owner_key: str, conversation_id: str) -> Any: ...

    def append_message(
        self, owner_key: str, conversation_id: str, role: str, content: str, status: str = ...
    ) -> Any: ...


@dataclass(frozen=True)
class TurnContext:
    """Who asks, from where, in which language; built by the web layer from the server-side session."""

    user: User
    ip: str | None = None
    request_id: str | None = None
    locale: str = "en"


class Limiter(Protocol):
    """auth.rate_limits.RateLimiter: decisions are Allowed or Limited(retry_after)."""

    def hit_chat(self, user_key: str, ip: str | None = None) -> Any: ...

    def check_tokens(self, user_key: str, ip: str | None = None) -> Any: ...

    def consume_tokens(self, user_key: str, n: int) -> Any: ...


@dataclass(frozen=True)
class TurnGuards:
    """Checks before a turn runs; each is optional so tests can use only what they exercise."""

    policy: Any = None  # store.prompt_policy.PromptPolicy
    limiter: Limiter | None = None
    concurrency: Any = None  # auth.user_concurrency.UserConcurrency


@dataclass
class ReplyUpdate:
    conversation_id: str | None
    reply: str
    status: Status
    notice: str | None = None  # a user-facing message shown instead of (or after) the reply
    stats: GenerationStats = field(default_factory=GenerationStats)


class ChatService:
    def __init__(
        self,
        engine: Engine,
        history: History,
        audit: AuditSink,
        generation: GenerationSettings,
        guards: TurnGuards | None = None,
    ) -> None:
        self._guards = guards or TurnGuards()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._draining = False
        self._engine = engine
        self._history = history
        self._audit = audit
        self._generation = generation

    def reply(
        self, ctx: TurnContext, conversation_id: str | None, message: str
    ) -> Iterator[ReplyUpdate]:
        """Stream one reply; closing the iterator stops generation and saves the reply as stopped."""
        message = message.strip()
        if not message:
            yield ReplyUpdate(conversation_id, "", "refused", text("empty", ctx.locale))
            return
        limit = self._generation.max_prompt_chars
        if len(message) > limit:
            yield ReplyUpdate(
                conversation_id, "", "refused", text("too_long", ctx.locale, limit=limit)
            )
            return

        if self._draining:
            yield ReplyUpdate(conversation_id, "", "refused", text("shutting_down", ctx.locale))
            return
        with contextlib.ExitStack() as held:
            try:
                refusal = self._refusal(ctx, conversation_id, message)
                if refusal is None and self._guards.concurrency is not None:
                    held.enter_context(self._guards.concurrency.hold(ctx.user.key))
            except GenerationInProgress:
                refusal = text("one_at_a_time", ctx.locale)
            except SharedStateUnavailable:
                # Limits and locks unreachable: refuse, never run unchecked.
                log.error("shared state unreachable: turn refused")
                refusal = text("unavailable", ctx.locale)
            if refusal is not None:
                yield ReplyUpdate(conversation_id, "", "refused", refusal)
                return
            held.enter_context(self._tracked())
            yield from self._turn(ctx, conversation_id, message)

    def start_draining(self) -> None:
        """Refuse new turns (shutdown); turns already running go on."""
        self._draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no turn is running (each has saved its reply) or `timeout` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _refusal(self, ctx: TurnContext, conversation_id: str | None, message: str) -> str | None:
        """Policy and rate limits, cheapest first; the message to show, or None to go ahead."""
        policy, limiter = self._guards.policy, self._guards.limiter
        if policy is not None:
            decision = policy.check(message)
            if decision.blocked:
                self._audit.record(
                    AuditEvent(
                        type=PROMPT_BLOCKED,
                        actor=ctx.user.key,
                        ip=ctx.ip,
                        request_id=ctx.request_id,
                        target=conversation_id,
                        outcome=decision.rule,
                        details={"prompt_excerpt": message[:200]},
                    )
                )
                return text("blocked", ctx.locale)
        if limiter is not None:
            for decision in (
                limiter.hit_chat(ctx.user.key, ctx.ip),
                limiter.check_tokens(ctx.user.key, ctx.ip),
            ):
                if isinstance(decision, Limited):  # the limiter has logged and audited it
                    key = "rate_limited" if decision.limit == "chat_per_minute" else "token_quota"
                    return text(key, ctx.locale, seconds=decision.retry_after)
        return None

    def _turn(
        self, ctx: TurnContext, conversation_id: str | None, message: str
    ) -> Iterator[ReplyUpdate]:
        owner = ctx.user.key
        # The model's context comes from the database, never from what the browser sends.
        try:
            earlier = (
                self._history.get_conversation(owner, conversation_id).messages
                if conversation_id
                else []
            )
        except LookupError:  # someone else's or a deleted id: the store has audited it
            yield ReplyUpdate(None, "", "refused", text("not_found", ctx.locale))
            return
        request = GenerationRequest(
            messages=(
                *(
                    ChatMessage(m.role, m.content)
                    for m in earlier
                    if m.role in ("user", "assistant")
                ),
                ChatMessage("user", message),
            ),
            user_key=owner,
            conversation_id=conversation_id,
        )
        try:
            stream = self._engine.stream(request)  # admission first: a busy refusal saves nothing
        except EngineError as exc:
            yield ReplyUpdate(conversation_id, "", "refused", _notice(exc, ctx.locale))
            self._record(ctx, conversation_id, message, GenerationStats(), _outcome(exc))
            return
        try:
            if conversation_id is None:
                conversation_id = self._history.create_conversation(owner, _title(message)).id
            self._history.append_message(owner, conversation_id, "user", message, "complete")
        except BaseException:
            stream.cancel()
            raise
        yield from self._stream(ctx, conversation_id, stream, message)

    def _stream(
        self, ctx: TurnContext, conversation_id: str, stream: GenerationStream, message: str
    ) -> Iterator[ReplyUpdate]:
        reply = ""
        status: Status = "error"
        try:
            yield ReplyUpdate(conversation_id, "", "streaming")
            for delta in stream:
                reply += delta.text
                yield ReplyUpdate(conversation_id, reply, "streaming")
            status = "stopped" if stream.stats.finish_reason == "cancelled" else "complete"
            yield ReplyUpdate(conversation_id, reply, status, stats=stream.stats)
        except GeneratorExit:
            status = "stopped"  # the user pressed stop or closed the tab
            raise
        except EngineError as exc:
            log.warning("generation failed", extra={"conversation": conversation_id})
            yield ReplyUpdate(conversation_id, reply, "error", _notice(exc, ctx.locale))
        finally:
            stream.cancel()
            wait = getattr(stream, "wait", None)
            if wait is not None:
                wait(1.0)  # the worker ends within a decoding step; then the counts are final
            stats = stream.stats
            if status == "stopped":
                stats.finish_reason = "cancelled"
            # A stopped or failed reply is kept too, marked as such: nothing the user saw is lost.
            self._history.append_message(
                ctx.user.key, conversation_id, "assistant", reply, _saved_status(status)
            )
            self._record(ctx, conversation_id, message, stats, _saved_status(status))
            if self._guards.limiter is not None and stats.completion_tokens:
                try:
                    self._guards.limiter.consume_tokens(ctx.user.key, stats.completion_tokens)
                except SharedStateUnavailable:
                    # The reply is saved and audited; only the quota misses it.
                    log.error("shared state unreachable: tokens not counted")

    def _record(
        self,
        ctx: TurnContext,
        conversation_id: str | None,
        message: str,
        stats: GenerationStats,
        outcome: str,
    ) -> None:
        self._audit.record(
            AuditEvent(
                type=CHAT_REQUEST,
                actor=ctx.user.key,
                ip=ctx.ip,
                request_id=ctx.request_id,
                target=conversation_id,
                outcome=outcome,
                details={
                    "prompt_excerpt": message[:200],  # masked by the audit trail before storage
                    "prompt_tokens": stats.prompt_tokens,
                    "reply_tokens": stats.completion_tokens,
                    "ttft_s": stats.time_to_first_token,
                    "total_s": round(stats.total_time, 3),
                    "via_token": ctx.user.via_token,
                },
            )
        )


def _title(message: str) -> str:
    first_line = message.splitlines()[0] if message else ""
    return first_line[:60] or "New chat"


def _saved_status(status: Status) -> str:
    return {"complete": "complete", "stopped": "stopped"}.get(status, "error")


def _outcome(exc: EngineError) -> str:
    if isinstance(exc, EngineBusy):
        return "busy"
    if isinstance(exc, PromptTooLong):
        return "too_long"
    if isinstance(exc, EngineClosed):
        return "shutting_down"
    return "error"


def _notice(exc: EngineError, locale: str) -> str:
    key = {
        "busy": "busy",
        "too_long": "prompt_too_long",
        "shutting_down": "shutting_down",
    }.get(_outcome(exc), "engine_error")
    return text(key, locale)
