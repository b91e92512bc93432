"""`python launch.py audit verify`: walk the audit chain and exit non-zero if it was tampered with."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from store.audit_log import AuditLog
from store.database import create_database


def verify_audit(database_url: str) -> int:
    """Print one line; return 0 if the chain verifies, 1 if it is broken, 2 if it cannot be read."""
    where = make_url(database_url).render_as_string(hide_password=True)
    database = create_database(database_url)
    try:
        if not database.has_schema():
            print(f"audit verify: no audit trail in {where} (run `python launch.py migrate` first)")
            return 2
        result = AuditLog(database).verify()
    except SQLAlchemyError as exc:
        print(f"audit verify: cannot read {where}: {type(exc).__name__}")
        return 2
    finally:
        database.dispose()
    print(result.summary())
    return 0 if result.ok else 1
