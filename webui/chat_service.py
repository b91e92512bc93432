"""One chat turn, independent of Gradio: checks, history, streaming, saving, audit."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.audit import CHAT_REPLY, CHAT_REQUEST, PROMPT_BLOCKED, AuditEvent, AuditSink
from core.history import History, NoTurnToReplace, ends_with_finished_turn
from core.identity import User
from core.shared_state import SharedStateUnavailable
from core.store_outage import StoreUnreachable, WriteNow, Writes
from guards.rate_limits import Limited
from guards.user_concurrency import GenerationInProgress
from model.engine import (
    Engine,
    EngineClosed,
    EngineError,
    GenerationStream,
    QueuePlace,
)
from model.settings import GenerationSettings
from model.types import ChatMessage, GenerationRequest, GenerationStats, TextDelta
from webui.conversation_titles import auto_title
from webui.engine_notices import notice_for, outcome_of, retry_after_of, saved_notice
from webui.i18n import text
from webui.waiting_line import STOP_WAIT_SECONDS, FirstDelta, places_in_line

log = logging.getLogger("chat.service")

# A streaming reply is saved when both a second and 8 text deltas (about a token each) have passed
# since its last save. A crash then loses about a second of text; a fast engine costs one UPDATE a
# second per reply, and a slow one (a busy CPU at 2-5 tokens a second) one per 8 tokens rather
# than one per token or two, each write rewriting the whole reply so far.
SAVE_INTERVAL_SECONDS = 1.0
SAVE_EVERY_DELTAS = 8

# "queued": waiting in the engine's line (`queue` says where), only for callers that ask for it.
# "rate_limited": a per-user limit (messages per minute, tokens per day); retry_after says when.
# "refused": anything else that stopped the turn before it ran (policy, too long, busy, ...); a
# busy engine's refusal says when to try again in retry_after too.
Status = Literal["queued", "streaming", "complete", "stopped", "error", "refused", "rate_limited"]
SavedStatus = Literal["complete", "stopped", "error"]  # how a reply that started is kept


class TurnObserver(Protocol):
    """Told how each turn the engine saw went (webui.metrics.Metrics is one)."""

    def observe_turn(self, stats: GenerationStats, outcome: SavedStatus) -> None:
        """A started turn ended: the engine's final stats, and how its reply was saved."""
        ...

    def record_refusal(self, reason: str) -> None:
        """The engine refused a turn before it started ("chat:busy", "chat:too_long", ...)."""
        ...


class NoObserver:
    """The default observer: a ChatService without metrics."""

    def observe_turn(self, stats: GenerationStats, outcome: SavedStatus) -> None:
        pass

    def record_refusal(self, reason: str) -> None:
        pass


@dataclass(frozen=True)
class TurnContext:
    """Who asks, from where, in which language; built by the web layer from the server-side session."""

    user: User
    ip: str | None = None
    request_id: str | None = None
    locale: str = "en"


class Limiter(Protocol):
    """guards.rate_limits.RateLimiter: decisions are Allowed or Limited(retry_after)."""

    def hit_chat(self, user_key: str, ip: str | None = None) -> Any: ...

    def check_tokens(self, user_key: str, ip: str | None = None) -> Any: ...

    def consume_tokens(self, user_key: str, n: int) -> Any: ...


@dataclass(frozen=True)
class TurnGuards:
    """Checks before a turn runs; each is optional so tests can use only what they exercise."""

    policy: Any = None  # store.prompt_policy.PromptPolicy
    limiter: Limiter | None = None
    concurrency: Any = None  # guards.user_concurrency.UserConcurrency
    stops: Any = None  # guards.stop_requests.StopRequests: Stop from any tab or replica


@dataclass(frozen=True)
class _Turn:
    """A turn saved and about to stream: where its reply goes and what was asked."""

    conversation_id: str
    reply_id: int
    message: str
    replaced: bool = False  # it took the place of the conversation's last turn


@dataclass
class ReplyUpdate:
    conversation_id: str | None
    reply: str
    status: Status
    notice: str | None = None  # a user-facing message shown instead of (or after) the reply
    stats: GenerationStats = field(default_factory=GenerationStats)
    # Seconds until a "rate_limited" turn may be sent again, or until the busy engine that refused
    # (or dropped from its line) this turn expects a place: what an HTTP API says in Retry-After.
    retry_after: int | None = None
    queue: QueuePlace | None = None  # a "queued" turn's place in the engine's line


class ChatService:
    def __init__(
        self,
        engine: Engine,
        history: History,
        audit: AuditSink,
        generation: GenerationSettings,
        guards: TurnGuards | None = None,
        clock: Callable[[], float] = time.monotonic,  # paces the partial saves
        observer: TurnObserver | None = None,
        writes: Writes | None = None,  # a reply's final save survives a database outage
    ) -> None:
        self._guards = guards or TurnGuards()
        self._clock = clock
        self._observer = observer or NoObserver()
        self._writes = writes if writes is not None else WriteNow()  # (an empty buffer is falsy)
        self._in_flight = 0
        self._idle = threading.Condition()
        self._draining = False
        self._engine = engine
        self._history = history
        self._audit = audit
        self._generation = generation

    def reply(
        self,
        ctx: TurnContext,
        conversation_id: str | None,
        message: str,
        report_queue: bool = False,
        replace_last: bool = False,
    ) -> Iterator[ReplyUpdate]:
        """Stream one reply; closing the iterator stops generation and saves the reply as stopped.

        With `report_queue`, a reply waiting in the engine's line is reported as "queued" updates
        (its place, about every second: webui.waiting_line) until it starts. With `replace_last`, the turn
        takes the place of the conversation's last question and reply: `message` is the edited
        question, or empty to ask the same question again (regenerate).
        """
        message = message.strip()
        if not message and not replace_last:
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
                refusal = ReplyUpdate(
                    conversation_id, "", "refused", text("one_at_a_time", ctx.locale)
                )
            except SharedStateUnavailable:
                # Limits and locks unreachable: refuse, never run unchecked.
                log.error("shared state unreachable: turn refused")
                refusal = ReplyUpdate(
                    conversation_id, "", "refused", text("unavailable", ctx.locale)
                )
            if refusal is not None:
                yield refusal
                return
            held.enter_context(self._tracked())
            yield from self._turn(ctx, conversation_id, message, report_queue, replace_last)

    def start_draining(self) -> None:
        """Refuse new turns (shutdown); turns already running go on."""
        self._draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no turn is running (each has saved its reply) or `timeout` passes."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def stop(self, user_key: str) -> bool:
        """Stop the user's running reply wherever it runs (another tab, a script, another
        replica), saved as stopped: on this replica at once, on another at its next token.
        False if shared state could not be reached (then only this replica's replies stop)."""
        if self._guards.stops is None:
            return False
        try:
            self._guards.stops.request(user_key)
        except SharedStateUnavailable:
            log.error("shared state unreachable: Stop reaches only this replica's replies")
            return False
        return True

    def reply_running(self, user_key: str) -> bool:
        """Is a reply being generated for the user now, here or on another replica?"""
        if self._guards.concurrency is None:
            return False
        try:
            return bool(self._guards.concurrency.running(user_key))
        except SharedStateUnavailable:
            log.warning("shared state unreachable: a running reply cannot be seen")
            return False

    def _stop_watch(self, user_key: str, stream: GenerationStream) -> Callable[[], bool]:
        """True once Stop was pressed for the user after this call (a turn starting); pressed
        on this replica, it also cancels `stream` at once."""
        if self._guards.stops is None:
            return lambda: False
        return self._guards.stops.watch(user_key, stream.cancel)

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

    def _refusal(
        self, ctx: TurnContext, conversation_id: str | None, message: str
    ) -> ReplyUpdate | None:
        """Policy and rate limits, cheapest first; the refusal to send, or None to go ahead."""
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
                return ReplyUpdate(conversation_id, "", "refused", text("blocked", ctx.locale))
        if limiter is not None:
            for decision in (
                limiter.hit_chat(ctx.user.key, ctx.ip),
                limiter.check_tokens(ctx.user.key, ctx.ip),
            ):
                if isinstance(decision, Limited):  # the limiter has logged and audited it
                    key = "rate_limited" if decision.limit == "chat_per_minute" else "token_quota"
                    notice = text(key, ctx.locale, seconds=decision.retry_after)
                    return ReplyUpdate(
                        conversation_id,
                        "",
                        "rate_limited",
                        notice,
                        retry_after=decision.retry_after,
                    )
        return None

    def _turn(
        self,
        ctx: TurnContext,
        conversation_id: str | None,
        message: str,
        report_queue: bool,
        replace_last: bool,
    ) -> Iterator[ReplyUpdate]:
        owner = ctx.user.key
        # The model's context comes from the database, never from what the browser sends.
        try:
            earlier = (
                self._history.get_conversation(owner, conversation_id).messages
                if conversation_id
                else ()
            )
        except LookupError:  # someone else's or a deleted id: the store has audited it
            yield ReplyUpdate(None, "", "refused", text("not_found", ctx.locale))
            return
        except StoreUnreachable:
            yield _store_down(conversation_id, ctx.locale)
            return
        if replace_last:
            # Read under the user's one-reply lock: the turn replaced is the one the store holds.
            if not ends_with_finished_turn(earlier):
                yield ReplyUpdate(
                    conversation_id, "", "refused", text("nothing_to_redo", ctx.locale)
                )
                return
            message = message or earlier[-2].content
            earlier = earlier[:-2]
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
            outcome = outcome_of(exc)
            self._record_request(ctx, conversation_id, message, outcome)
            self._observer.record_refusal(f"chat:{outcome}")
            yield ReplyUpdate(
                conversation_id,
                "",
                "refused",
                notice_for(exc, ctx.locale),
                retry_after=retry_after_of(exc),
            )
            return
        try:
            if conversation_id is None:
                conversation_id = self._history.create_conversation(owner, auto_title(message)).id
            # The question and its empty "streaming" reply in one transaction, before any token:
            # whatever happens next, the conversation goes on alternating user, assistant.
            if replace_last:
                reply_id = self._history.replace_last_turn(owner, conversation_id, message)
            else:
                reply_id = self._history.start_turn(owner, conversation_id, message)
        except NoTurnToReplace:  # changed since it was read (a script of the same user)
            stream.cancel()
            yield ReplyUpdate(conversation_id, "", "refused", text("nothing_to_redo", ctx.locale))
            return
        except StoreUnreachable:
            stream.cancel()
            yield _store_down(conversation_id, ctx.locale)
            return
        except BaseException:
            stream.cancel()
            raise
        turn = _Turn(conversation_id, reply_id, message, replaced=replace_last)
        yield from self._stream(ctx, turn, stream, report_queue)

    def _stream(
        self, ctx: TurnContext, turn: _Turn, stream: GenerationStream, report_queue: bool
    ) -> Iterator[ReplyUpdate]:
        conversation_id, reply_id = turn.conversation_id, turn.reply_id
        reply = ""
        status: Status = "streaming"  # until the stream ends, fails or is stopped
        notice: str | None = None  # the key of what the reader was told when it ended short
        deleted = False  # its conversation was deleted while it streamed: nothing to save into
        deltas = iter(stream)
        first: FirstDelta | None = None
        stats: GenerationStats | None = None
        try:
            # In the trail before generation: a crash cannot hide that the turn was asked.
            self._record_request(ctx, conversation_id, turn.message, "started", turn.replaced)
            stopped = self._stop_watch(ctx.user.key, stream)  # a Stop from now on, anywhere
            yield ReplyUpdate(conversation_id, "", "streaming")
            if report_queue:
                # Engines admit a waiting request when its stream is read (the remote one
                # sends it then): a reader thread waits for the first delta, and this thread
                # reports the place in line meanwhile.
                first = FirstDelta(deltas)
                for place in places_in_line(stream, first, stopped):
                    status_now = "queued" if place is not None else "streaming"
                    yield ReplyUpdate(conversation_id, "", status_now, queue=place)
            saved_at, unsaved = self._clock(), 0
            for delta in first.then(deltas) if first is not None else deltas:
                if stopped():  # Stop in another tab: ends as this tab's Stop would, saved stopped
                    status = "stopped"  # whatever the engine had generated beyond what was shown
                    break
                reply += delta.text
                unsaved += 1
                yield ReplyUpdate(conversation_id, reply, "streaming")
                if (
                    unsaved >= SAVE_EVERY_DELTAS
                    and self._clock() - saved_at >= SAVE_INTERVAL_SECONDS
                ):
                    self._save_partial(ctx, conversation_id, reply_id, reply)
                    saved_at, unsaved = self._clock(), 0
            stats = _run_out(stream, deltas)  # it has ended: this only takes its stats
            if status == "streaming":
                status = "stopped" if stats.finish_reason == "cancelled" else "complete"
            yield ReplyUpdate(conversation_id, reply, status, stats=stats)
        except GeneratorExit:
            if status == "streaming":
                status = "stopped"  # the user pressed stop or closed the tab
            raise
        except LookupError:
            # The conversation was deleted meanwhile (another tab, a script): nothing to reply into.
            status, deleted = "stopped", True
            yield ReplyUpdate(None, reply, "stopped", text("deleted_meanwhile", ctx.locale))
        except EngineClosed:
            # The server is shutting down: what was written is kept, and the reader is told so.
            status, notice = "stopped", "restarting"
            yield ReplyUpdate(conversation_id, reply, "stopped", text("restarting", ctx.locale))
        except EngineError as exc:
            status, notice = "error", saved_notice(exc)
            log.warning("generation failed", extra={"conversation": conversation_id})
            yield ReplyUpdate(
                conversation_id,
                reply,
                "error",
                notice_for(exc, ctx.locale),
                retry_after=retry_after_of(exc),
            )
        finally:
            if stats is None:
                stats = _run_out(stream, deltas, first)
            saved = _saved_status(status)
            # A stopped or failed reply is kept too, marked as such: nothing the user saw is lost,
            # not even to a database outage (the save then waits, in order, with its audit record).
            owner, history = ctx.user.key, self._history
            try:
                if not deleted:
                    self._writes.run(
                        "reply",
                        lambda: history.update_message(
                            owner, conversation_id, reply_id, reply, saved, notice
                        ),
                    )
            except LookupError:  # deleted between its last update and this save
                log.info("reply not saved: its conversation was deleted")
            self._record_reply(ctx, conversation_id, stats, saved)
            self._observer.observe_turn(stats, saved)
            if self._guards.limiter is not None and stats.completion_tokens:
                try:
                    self._guards.limiter.consume_tokens(ctx.user.key, stats.completion_tokens)
                except SharedStateUnavailable:
                    # The reply is saved and audited; only the quota misses it.
                    log.error("shared state unreachable: tokens not counted")

    def _save_partial(
        self, ctx: TurnContext, conversation_id: str, reply_id: int, reply: str
    ) -> None:
        try:
            self._history.update_message(
                ctx.user.key, conversation_id, reply_id, reply, "streaming"
            )
        except LookupError:
            raise  # the conversation was deleted meanwhile: nothing left to reply into
        except StoreUnreachable:
            log.warning("partial reply not saved: database unreachable")
        except Exception:
            # The reply goes on and the next save (at the latest the final one) tries again.
            log.warning(
                "partial reply not saved", extra={"conversation": conversation_id}, exc_info=True
            )

    def _record_request(
        self,
        ctx: TurnContext,
        conversation_id: str | None,
        message: str,
        outcome: str,
        replaced: bool = False,
    ) -> None:
        """chat.request: "started" once the turn is saved, or why the engine refused it."""
        # The excerpt is masked by the audit trail before storage.
        details: dict[str, Any] = {"prompt_excerpt": message[:200], "via_token": ctx.user.via_token}
        if replaced:
            details["replaced_last_turn"] = True  # regenerated or edited: the old turn is gone
        self._record(ctx, CHAT_REQUEST, conversation_id, outcome, details)

    def _record_reply(
        self, ctx: TurnContext, conversation_id: str, stats: GenerationStats, outcome: str
    ) -> None:
        """chat.reply: how a started turn ended, with its counts and timings."""
        details = {
            "finish_reason": stats.finish_reason,  # the engine's, next to how the reply was kept
            "prompt_tokens": stats.prompt_tokens,
            "reply_tokens": stats.completion_tokens,
            "ttft_s": stats.time_to_first_token,
            "total_s": round(stats.total_time, 3),
            "via_token": ctx.user.via_token,
        }
        self._record(ctx, CHAT_REPLY, conversation_id, outcome, details)

    def _record(
        self,
        ctx: TurnContext,
        type_: str,
        conversation_id: str | None,
        outcome: str,
        details: dict[str, Any],
    ) -> None:
        self._audit.record(
            AuditEvent(
                type=type_,
                actor=ctx.user.key,
                ip=ctx.ip,
                request_id=ctx.request_id,
                target=conversation_id,
                outcome=outcome,
                details=details,
            )
        )


def _store_down(conversation_id: str | None, locale: str) -> ReplyUpdate:
    log.warning("turn refused: database unreachable")
    return ReplyUpdate(conversation_id, "", "refused", text("store_unavailable", locale))


def _saved_status(status: Status) -> SavedStatus:
    return "complete" if status == "complete" else "stopped" if status == "stopped" else "error"


def _run_out(
    stream: GenerationStream, deltas: Iterator[TextDelta], first: FirstDelta | None = None
) -> GenerationStats:
    """Stop the generation if it still runs and read its stream to the end, where the engine
    hands over the final stats (within a decoding step of the cancel: no fixed wait)."""
    stream.cancel()
    if first is not None and not first.wait(STOP_WAIT_SECONDS):
        # Its reader thread is still inside the stream: reading on here would race it.
        log.error("a stream stopped in line did not end")
        return stream.final or GenerationStats(finish_reason="cancelled")
    with contextlib.suppress(EngineError):  # already shown to the user, or a stop's own ending
        for _ in deltas:
            pass
    if stream.final is None:  # an engine broke its protocol: still save and audit the reply
        log.error("an engine stream ended without its final stats")
        return GenerationStats(finish_reason="error")
    return stream.final
