"""Audit signing benchmark (not a test): what an Ed25519 signature adds to each audit record write.

Writes the same records through AuditLog unsigned and signed, interleaved over several rounds on a
fresh database each time, and prints microseconds per record and the signed/unsigned ratio (median
of the rounds), plus the bare cost of one signature and one verification.

    python -m bench.audit_signing [--records 2000] [--rounds 5] [--database-url URL]

Without --database-url each round uses a new SQLite file in a temporary directory; a PostgreSQL URL
gets the records appended to its audit trail (use a throw-away schema).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from core.audit import CHAT_REQUEST, AuditEvent
from store.audit_keys import RECORD_CONTEXT, audit_keys, generate_private_key_text
from store.audit_log import AuditLog
from store.database import create_database, migrate
from store.settings import AuditSettings

EVENT = AuditEvent(
    type=CHAT_REQUEST,
    actor="https://idp.example|alice",
    ip="10.0.0.7",
    request_id="req-0123456789",
    target="c" * 32,
    outcome="started",
    details={"prompt_tokens": 42, "model": "qwen"},
)


def write_us(url: str, records: int, signer) -> float:
    """Microseconds per record for `records` writes on an empty, migrated database at `url`."""
    database = create_database(url)
    try:
        migrate(database)
        log = AuditLog(database, signer=signer)
        log.record(EVENT)  # warm the pool and the statement cache
        start = time.perf_counter()
        for _ in range(records):
            log.record(EVENT)
        return (time.perf_counter() - start) / records * 1e6
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="default: a new SQLite file per round")
    args = parser.parse_args()
    keys = audit_keys(AuditSettings(signing_keys=(SecretStr(generate_private_key_text()),)))
    signer, verifier = keys.signer, keys.verifier
    assert signer is not None and verifier is not None

    n = 10_000
    start = time.perf_counter()
    signatures = [signer.sign(RECORD_CONTEXT, f"{i:064x}") for i in range(n)]
    sign_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for i, signature in enumerate(signatures):
        verifier.valid(signer.key_id, RECORD_CONTEXT, f"{i:064x}", signature)
    verify_us = (time.perf_counter() - start) / n * 1e6

    unsigned, signed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for label, results, key in (("u", unsigned, None), ("s", signed, signer)):
                url = args.database_url or f"sqlite:///{Path(tmp) / f'{label}{round_}.db'}"
                results.append(write_us(url, args.records, key))
    ratios = [s / u for s, u in zip(signed, unsigned, strict=True)]
    print(f"Ed25519 sign: {sign_us:.1f} us, verify: {verify_us:.1f} us (cryptography, one core)")
    print(f"unsigned write: {statistics.median(unsigned):.0f} us/record (median of {args.rounds})")
    print(f"signed write:   {statistics.median(signed):.0f} us/record")
    print(f"signed/unsigned: {statistics.median(ratios):.3f} (median of the rounds' ratios)")


if __name__ == "__main__":
    main()
