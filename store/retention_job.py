"""The retention job: deletes expired conversations, audit records and sessions on a schedule, and
purges conversations their owners deleted once the undo window is over, every minute."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from store.periodic import PeriodicJob
from store.settings import RetentionSettings

log = logging.getLogger("chat.retention")
# How often deleted conversations past the undo window are purged: with the 20 s window, a deleted
# conversation is gone from the database within 80 s (docs/operations.md, Retention).
DELETED_SWEEP_SECONDS = 60


@dataclass(frozen=True)
class PurgeCounts:
    conversations: int
    audit_records: int
    sessions: int
    deleted_conversations: int = 0


class RetentionJob:
    """Runs `run_once` now and then every `purge_interval_hours` in a daemon thread until `stop()`.

    A second thread purges deleted conversations past the undo window every `deleted_sweep_seconds`.
    Each purge writes its own audit record (history and audit purges leave a checkpoint), so the
    chain stays verifiable. With several replicas each runs it; the deletes are idempotent.
    """

    def __init__(
        self,
        settings: RetentionSettings,
        history: Any,
        audit_log: Any,
        sessions: Any,
        deleted_sweep_seconds: float = DELETED_SWEEP_SECONDS,
    ) -> None:
        self._settings = settings
        self._history = history
        self._audit_log = audit_log
        self._sessions = sessions
        self._job = PeriodicJob("retention", settings.purge_interval_hours * 3600, self.run_once)
        self._deleted_job = PeriodicJob(
            "retention-deleted", deleted_sweep_seconds, self.purge_deleted
        )

    def run_once(self) -> PurgeCounts:
        counts = PurgeCounts(
            conversations=self._history.purge(self._settings.history_days),
            audit_records=self._audit_log.purge(self._settings.audit_days),
            sessions=self._purge_sessions(),
            deleted_conversations=self.purge_deleted(),
        )
        log.info("retention purge done", extra={"counts": counts.__dict__})
        return counts

    def purge_deleted(self) -> int:
        """Purge conversations deleted longer ago than the undo window; how many."""
        return self._history.purge_deleted()

    def _purge_sessions(self) -> int:
        purge = getattr(self._sessions, "purge_expired", None)
        return purge(datetime.now(UTC)) if purge is not None else 0

    def start(self) -> None:
        self._job.start()
        self._deleted_job.start()

    def stop(self) -> None:
        self._deleted_job.stop()
        self._job.stop()
