"""CSV export of audit records for the admin tab, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from store.audit_chain import AuditRecord, canonical_ts

COLUMNS = ("id", "ts", "type", "actor", "ip", "request_id", "target", "outcome", "details", "hash")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """Prefix a quote so a cell such as "=HYPERLINK(...)" is shown as text, not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def records_to_csv(records: Iterable[AuditRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for record in records:
        values = [
            str(record.id),
            canonical_ts(record.ts),
            record.type,
            record.actor or "",
            record.ip or "",
            record.request_id or "",
            record.target or "",
            record.outcome or "",
            record.details,
            record.hash,
        ]
        writer.writerow([spreadsheet_safe(v) for v in values])
    return buffer.getvalue()
