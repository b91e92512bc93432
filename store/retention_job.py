"""The retention job: deletes expired conversations, audit records and sessions on a schedule."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from store.periodic import PeriodicJob
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
        self._job = PeriodicJob("retention", settings.purge_interval_hours * 3600, self.run_once)

    def run_once(self) -> PurgeCounts:
        counts = PurgeCounts(
            conversations=self._history.purge(self._settings.history_days),
            audit_records=self._audit_log.purge(self._settings.audit_days),
            sessions=self._purge_sessions(),
        )
        log.info("retention purge done", extra={"counts": counts.__dict__})
        return counts

    def _purge_sessions(self) -> int:
        purge = getattr(self._sessions, "purge_expired", None)
        return purge(datetime.now(UTC)) if purge is not None else 0

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()
