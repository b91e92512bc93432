"""Bounded per-tab memory in Gradio: the page's tabs expire after a TTL and are capped in number.

What Gradio 6.31.0 keeps per browser tab (session hash), and its own bound on it:

    App.state_holder.session_data       a SessionState: a copy of the page's   state_session_capacity
      (state_holder.py)                 config, with every component and       (10,000, set only by
                                        handler gr.render built for the tab    launch()), oldest first,
                                        (~235 KB here)                         busy or not
    App.state_holder.time_last_used     a datetime                             the same
    Queue.pending_messages_per_session  an asyncio.Queue of outgoing messages  LRUCache(2000), oldest
      (queueing.py)                                                            first, busy or not
    Queue.pending_event_ids_session     a set, left behind empty               none
    Queue.process_time_per_fn           timings keyed on each handler it ran;  none
                                        a rendered one holds its whole page
    Queue.event_queue_per_concurrency_id  an EventQueue per rendered handler   none; the queue's loop
                                        (keyed on id(fn))                      counts them every 1 ms
    Blocks.temp_file_sets (blocks.py)   a set per rendered component, and per  none
                                        update of one's settings (which
                                        replaces it in the tab)
    Queue.event_analytics               a dict per event, for the monitoring   10,000 events
                                        page (off here)

`gr.State(time_to_live=...)` clears only a State's value, counted from when it was set, and
`gr.Blocks(delete_cache=...)` deletes files: neither frees a tab. So PageSessions swaps in an
idle-first capacity for the state and the message queues (a tab with an event queued or running is
never the one dropped, so a flood of new tabs cannot lose anyone's waiting reply), sweeps tabs
unused for the TTL out of every structure above, and caps the analytics. This is the only module
that reaches into these structures; it refuses to run on another Gradio version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import gradio as gr
from gradio.state_holder import SessionState, StateHolder
from gradio.utils import LRUCache

log = logging.getLogger("chat.gradio")

WRITTEN_FOR = "6.31.0"  # the structures above were read from this release
ANALYTICS_EVENTS = 100  # only Gradio's monitoring page reads them, and it is off
_FILE_SETS_BATCH = 100  # tabs dropped by the capacity before their temp-file sets are pruned
_IDLE, _UNREAD, _ACTIVE = 0, 1, 2  # nothing pending; a result not yet read; queued or running


class UnsupportedGradio(RuntimeError):
    """The installed Gradio is not the release this module was written against."""


def check_supported(version: str | None = None) -> None:
    """Raise UnsupportedGradio unless Gradio (or `version`) is WRITTEN_FOR."""
    running = version or gr.__version__
    if running != WRITTEN_FOR:
        raise UnsupportedGradio(
            f"gradio {running} is not supported: webui/gradio_state.py manages the session"
            f" structures of gradio {WRITTEN_FOR}; install the version pinned in requirements.txt"
        )


@dataclass(frozen=True)
class SessionCounts:
    """How many entries each per-session structure holds."""

    states: int
    last_used: int
    message_queues: int
    event_id_sets: int
    events: int  # queued or running
    file_sets: int  # Blocks.temp_file_sets
    analytics: int
    handler_timings: int  # Queue.process_time_per_fn
    event_queues: int  # Queue.event_queue_per_concurrency_id


def session_counts(blocks: gr.Blocks) -> SessionCounts:
    """The sizes of the mounted `blocks`' per-session structures (with PageSessions or without)."""
    holder, queue = blocks.state_holder, blocks._queue
    return SessionCounts(
        states=len(holder.session_data),
        last_used=len(holder.time_last_used),
        message_queues=len(queue.pending_messages_per_session),
        event_id_sets=len(queue.pending_event_ids_session),
        events=len(queue.event_ids_to_events),
        file_sets=len(blocks.temp_file_sets),
        analytics=len(queue.event_analytics),
        handler_timings=len(queue.process_time_per_fn),
        event_queues=len(queue.event_queue_per_concurrency_id),
    )


class PageSessions:
    """Holds at most `max_sessions` tabs' state and drops a tab's state once unused for `ttl`."""

    def __init__(
        self,
        gradio_app: Any,
        blocks: gr.Blocks,
        *,
        ttl: timedelta,
        max_sessions: int,
    ) -> None:
        check_supported()
        self._ttl = ttl
        self._blocks, self._queue = blocks, blocks._queue
        self._first_seen: dict[str, datetime] = {}  # unread results of tabs without a state
        self._loop: asyncio.AbstractEventLoop | None = None
        blocks.state_session_capacity = max_sessions
        holder = _IdleFirstStateHolder(self._victim)
        holder.set_blocks(blocks)  # also points blocks.state_holder at it
        gradio_app.state_holder = holder
        self._holder = holder
        queues = _IdleFirstQueues(max_sessions, self._victim)
        queues.update(self._queue.pending_messages_per_session)
        self._queue.pending_messages_per_session = queues
        self._queue.ANALYTICS_MAX_EVENTS = ANALYTICS_EVENTS

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the sweep runs on (Gradio's); None until the app has started."""
        return self._loop

    @property
    def sweep_every(self) -> float:
        """Seconds between sweeps: a quarter of the TTL, within 1-60 s."""
        return min(60.0, max(1.0, self._ttl.total_seconds() / 4))

    def sweep(self, now: datetime | None = None) -> int:
        """Drop every tab with nothing queued or running, unused for the TTL; returns how many.

        `now` is naive local time, as Gradio stamps a tab's last use."""
        now = now or datetime.now()
        cutoff = now - self._ttl
        known = (
            set(self._holder.session_data)
            | set(self._queue.pending_messages_per_session)
            | set(self._queue.pending_event_ids_session)
        )
        self._first_seen = {h: t for h, t in self._first_seen.items() if h in known}
        dropped = 0
        for session_hash in known:
            activity = self._activity(session_hash)
            if activity == _ACTIVE:
                continue
            last = self._holder.time_last_used.get(session_hash)
            if last is None:  # the capacity dropped its state already; an unread result waits
                last = (
                    datetime.min
                    if activity == _IDLE
                    else self._first_seen.setdefault(session_hash, now)
                )
            if last <= cutoff:
                self._forget(session_hash)
                dropped += 1
        with self._holder.lock:
            self._holder.forget_file_sets()
        return dropped

    def counts(self) -> SessionCounts:
        return session_counts(self._blocks)

    def holds(self, session_hash: str) -> bool:
        """Whether Gradio still holds this tab's state (its page, as rendered for it)."""
        return session_hash in self._holder.session_data

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Sweep on this event loop while the context is open.

        Not store.periodic.PeriodicJob: that runs in a thread, and Gradio changes these dicts on its
        event loop without locks, so the sweep must run on the same loop."""
        self._loop = asyncio.get_running_loop()
        task = asyncio.create_task(self._sweep_forever(), name="gradio-session-sweep")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                dropped = self.sweep()
            except Exception:  # the sweep must not die; the next one retries
                log.exception("sweeping Gradio sessions failed")
                continue
            if dropped:
                log.debug("dropped idle Gradio sessions", extra={"dropped": dropped})

    def _activity(self, session_hash: str) -> int:
        ids = self._queue.pending_event_ids_session.get(session_hash)
        if not ids:
            return _IDLE
        events = self._queue.event_ids_to_events
        return _ACTIVE if any(i in events for i in tuple(ids)) else _UNREAD

    def _victim(self, sessions: Iterable[str], keep: str) -> str | None:
        """The first idle tab in `sessions` (oldest first), else the first with only unread
        results; None when every other tab has an event queued or running."""
        unread = None
        for session_hash in sessions:
            if session_hash == keep:
                continue
            activity = self._activity(session_hash)
            if activity == _IDLE:
                return session_hash
            if activity == _UNREAD and unread is None:
                unread = session_hash
        return unread

    def _forget(self, session_hash: str) -> None:
        holder, queue = self._holder, self._queue
        with holder.lock:
            holder.drop(session_hash)
        queue.pending_messages_per_session.pop(session_hash, None)
        queue.pending_event_ids_session.pop(session_hash, None)
        self._first_seen.pop(session_hash, None)


class _IdleFirstStateHolder(StateHolder):
    """Gradio's StateHolder, except that past capacity it drops an idle tab, not simply the oldest."""

    def __init__(self, victim: Callable[[Iterable[str], str], str | None]) -> None:
        super().__init__()
        self._pick = victim
        self._dropped = 0  # tabs dropped since the temp-file sets were last pruned
        self._pruned_at = 0  # len(blocks.temp_file_sets) after that pruning

    def update(self, session_id: str) -> None:
        with self.lock:
            if session_id in self.session_data:
                self.session_data.move_to_end(session_id)
            while len(self.session_data) > self.capacity:
                victim = self._pick(self.session_data, session_id)
                if victim is None:  # all busy: bounded by the queue's max_size and running events
                    break
                self.drop(victim)

    def drop(self, session_id: str) -> None:
        """Forget one tab (the caller holds the lock); gr.State delete callbacks run first."""
        if session_id in self.session_data:
            self.delete_state(session_id)
            state = self.session_data.pop(session_id)
            _forget_handlers(self.blocks, state)
            self._dropped += 1
            if self._dropped >= _FILE_SETS_BATCH:
                self.forget_file_sets()
        self.time_last_used.pop(session_id, None)

    def forget_file_sets(self) -> None:
        """Keep in the page's list of temp-file sets only those of live components: the page's
        own and those of the tabs still held (the caller holds the lock). Rendering appends a set
        for each component it builds, and so does an update of a rendered component's settings
        (gr.update(choices=...)), which replaces that component in its tab; nothing takes them out.

        Skipped when no tab was dropped and the list has not grown since the last pass. A render
        running in a worker thread meanwhile may lose its entries; that only means delete_cache
        (not used here) would not clean those components' files."""
        blocks = self.blocks
        if not self._dropped and len(blocks.temp_file_sets) <= self._pruned_at:
            return
        live = _file_set_ids(blocks.blocks)
        for state in self.session_data.values():
            live |= _file_set_ids(state.blocks_config.blocks)
        blocks.temp_file_sets = [s for s in blocks.temp_file_sets if id(s) in live]
        self._dropped, self._pruned_at = 0, len(blocks.temp_file_sets)


def _file_set_ids(blocks: dict[int, Any]) -> set[int]:
    """ids of the temp-file sets of `blocks` (alive while their components are, so unique)."""
    return {id(block.temp_files) for block in blocks.values() if hasattr(block, "temp_files")}


def _forget_handlers(blocks: gr.Blocks, state: SessionState) -> None:
    """Drop what the queue keeps for the handlers gr.render built for one tab: their timings, keyed
    on the handler (which holds the tab's whole page), and each handler's own EventQueue."""
    shared, queue = blocks.fns, blocks._queue
    for fn_id, fn in state.blocks_config.fns.items():
        if shared.get(fn_id) is fn:
            continue
        queue.process_time_per_fn.pop(fn, None)
        # A queue of its own is keyed on id(fn.fn), unique while this tab holds fn.fn; never a
        # queue shared by several handlers (an explicit concurrency_id, or fn=None).
        own = fn.fn is not None and fn.concurrency_id == str(id(fn.fn))
        event_queue = queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
        idle = event_queue is not None and not (
            event_queue.queue or event_queue.current_concurrency
        )
        if own and idle:
            del queue.event_queue_per_concurrency_id[fn.concurrency_id]


class _IdleFirstQueues(LRUCache):
    """Gradio's outgoing-message queues per tab; past capacity an idle tab's queue goes, never
    the queue a waiting reply will be delivered through."""

    def __init__(self, max_size: int, victim: Callable[[Iterable[str], str], str | None]) -> None:
        super().__init__(max_size)
        self._pick = victim

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self:
            self.move_to_end(key)
        else:
            while len(self) >= self.max_size:
                victim = self._pick(self, key)
                if victim is None:
                    break
                OrderedDict.__delitem__(self, victim)
        OrderedDict.__setitem__(self, key, value)
