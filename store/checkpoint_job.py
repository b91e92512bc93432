"""The checkpoint job: signs the audit chain head now and then, off the request path.

A checkpoint is written when the job starts, then whenever `every_records` records were added or
`interval_seconds` passed with new records (whichever comes first), and once more at shutdown. Each
goes to the "chat.audit" log as one JSON line and, when a file is configured, is appended to it.
Every replica runs its own job; their checkpoints are independent and each is signed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from store.audit_checkpoints import Checkpoint, append_line, sign_checkpoint
from store.audit_keys import AuditSigner
from store.audit_log import AuditLog, utc_now
from store.periodic import PeriodicJob

log = logging.getLogger("chat.audit")

POLL_SECONDS = 1.0  # how often the head row is read (one primary-key lookup)


class CheckpointJob:
    def __init__(
        self,
        audit_log: AuditLog,
        signer: AuditSigner,
        path: Path | None,
        *,
        interval_seconds: float,
        every_records: int,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._audit_log = audit_log
        self._signer = signer
        self._path = path
        self._interval = interval_seconds
        self._every = every_records
        self._clock = clock
        self._monotonic = monotonic
        self._writer = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()  # the thread and stop() may both write
        self._last: Checkpoint | None = None
        self._last_at = monotonic()
        self._signed_from: int | None = None
        self._job = PeriodicJob("audit-checkpoints", poll_seconds, self.tick)

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        """Stop the thread and write a last checkpoint of the final head."""
        self._job.stop()
        try:
            self.checkpoint()
        except Exception:  # shutdown goes on; the previous checkpoint still stands
            log.exception("audit checkpoint at shutdown failed")

    def tick(self) -> Checkpoint | None:
        """Write a checkpoint if one is due; what was written, if anything."""
        last_id, _ = self._audit_log.head()
        written = self._last.last_id if self._last is not None else None
        if written is not None and last_id == written:
            return None
        due = (
            written is None
            or last_id - written >= self._every
            or self._monotonic() - self._last_at >= self._interval
        )
        return self.checkpoint() if due else None

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head and write it out; None when there is nothing new to vouch for."""
        with self._lock:
            if self._signed_from is None:
                self._signed_from = self._first_to_sign()
            last_id, last_hash = self._audit_log.head()
            if last_id == 0 or (self._last is not None and self._last.last_id == last_id):
                return None
            checkpoint = sign_checkpoint(
                self._signer,
                last_id=last_id,
                last_hash=last_hash,
                ts=self._clock().astimezone(UTC).isoformat(timespec="seconds"),
                prev=self._last.hash if self._last is not None else None,
                signed_from=self._signed_from,
                writer=self._writer,
            )
            self._last, self._last_at = checkpoint, self._monotonic()
        # The log line is written first: it survives a checkpoint volume that is down.
        log.info(
            "audit checkpoint", extra={"checkpoint": {**checkpoint.body(), "sig": checkpoint.sig}}
        )
        if self._path is not None:
            try:
                append_line(self._path, checkpoint.line())
            except OSError as exc:
                log.error(
                    "audit checkpoint not written to its file",
                    extra={"path": str(self._path), "error": exc.strerror or str(exc)},
                )
        return checkpoint

    def _first_to_sign(self) -> int:
        # This process signs everything it writes; older unsigned records are legacy.
        first = self._audit_log.first_signed_id()
        return first if first is not None else self._audit_log.head()[0] + 1
