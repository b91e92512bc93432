"""The retention job: deletes expired conversations, audit records and sessions on a schedule."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from store.settings import RetentionSettings

log = logging.getLogger("chat.retention")


@dataclass(frozen=True)
class PurgeCounts:
    conversations: int
    audit_records: int
    sessions: int


class RetentionJob:
    """Runs `run_once` now and then every `purge_interval_hours` in a daemon thread until `stop()`.

    Each purge writes its own audit record (history and audit purges leave a checkpoint), so the
    chain stays verifiable. With several replicas each runs it; the deletes are idempotent.
    """

    def __init__(
        self, settings: RetentionSettings, history: Any, audit_log: Any, sessions: Any
    ) -> None:
        self._settings = settings
        self._history = history
        self._audit_log = audit_log
        self._sessions = sessions
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PurgeCounts:
        counts = PurgeCounts(
            conversations=self._history.purge(self._settings.history_days),
            audit_records=self._audit_log.purge(self._settings.audit_days),
            sessions=self._purge_sessions(),
        )
        log.info("retention purge done", extra={"counts": counts.__dict__})
        return counts

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        interval = self._settings.purge_interval_hours * 3600
        while not self._stopped.is_set():
            try:
                self.run_once()
            except Exception:  # a failed purge must not kill the job; it retries next interval
                log.exception("retention purge failed")
            self._stopped.wait(interval)

    def _purge_sessions(self) -> int:
        purge = getattr(self._sessions, "purge_expired", None)
        return purge(datetime.now(UTC)) if purge is not None else 0
