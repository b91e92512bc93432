"""The audit trail as an admin reads it: masked records, filters, pagination, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from core.audit import CHAT_REQUEST, LOGIN_REFUSED, LOGIN_SUCCESS, AuditEvent
from store.audit_log import AuditFilters

ALICE = "https://idp.example|alice"
BOB = "https://idp.example|bob"


def test_records_are_stored_with_utc_time_and_masked_details(audit_log, clock):
    audit_log.record(
        AuditEvent(
            type=CHAT_REQUEST,
            actor=ALICE,
            ip="10.0.0.7",
            request_id="req-1",
            target="c" * 32,
            outcome="completed",
            details={
                "prompt_excerpt": "我的手机号是13800138000，邮箱alice@corp.example",
                "nested": {"auth": "Bearer abcdefghijklmnop"},
                "prompt_tokens": 12,
            },
        )
    )

    [record] = audit_log.query().records
    details = record.details_dict
    assert record.ts == clock.now and record.ts.utcoffset() == timedelta(0)
    assert (record.actor, record.ip, record.request_id, record.outcome) == (
        ALICE,
        "10.0.0.7",
        "req-1",
        "completed",
    )
    assert details["prompt_excerpt"] == "我的手机号是[PHONE]，邮箱[EMAIL]"
    assert details["nested"] == {"auth": "[SECRET]"}
    assert details["prompt_tokens"] == 12
    assert "13800138000" not in record.details


def test_outcome_with_personal_data_is_masked(audit_log):
    audit_log.record(
        AuditEvent(type=LOGIN_REFUSED, outcome="email domain not allowed: bob@other.example")
    )
    assert audit_log.query().records[0].outcome == "email domain not allowed: [EMAIL]"


def _seed(audit_log, clock):
    audit_log.record(AuditEvent(type=LOGIN_SUCCESS, actor=ALICE, ip="10.0.0.1"))
    clock.advance(hours=1)
    audit_log.record(AuditEvent(type=CHAT_REQUEST, actor=ALICE, details={"model": "qwen"}))
    clock.advance(hours=1)
    audit_log.record(AuditEvent(type=LOGIN_SUCCESS, actor=BOB, outcome="ok_100%"))
    clock.advance(hours=1)
    audit_log.record(AuditEvent(type=LOGIN_REFUSED, actor=None, outcome="state mismatch"))


def test_filters_by_time_actor_type_and_text(audit_log, clock):
    start = clock.now
    _seed(audit_log, clock)

    def types(**filters):
        return [r.type for r in audit_log.query(**filters).records]

    assert types() == [LOGIN_REFUSED, LOGIN_SUCCESS, CHAT_REQUEST, LOGIN_SUCCESS]  # newest first
    assert types(since=start + timedelta(hours=1), until=start + timedelta(hours=2)) == [
        CHAT_REQUEST
    ]
    assert [r.actor for r in audit_log.query(actor="ALICE").records] == [ALICE, ALICE]
    assert types(type=LOGIN_SUCCESS) == [LOGIN_SUCCESS, LOGIN_SUCCESS]
    assert types(text="QWEN") == [CHAT_REQUEST]
    assert types(text="mismatch") == [LOGIN_REFUSED]
    assert types(text="100%") == [LOGIN_SUCCESS]
    assert types(text="%") == [LOGIN_SUCCESS]  # a literal percent sign, not "match everything"


def test_pagination_reports_the_total(audit_log, clock):
    _seed(audit_log, clock)

    page = audit_log.query(limit=3, offset=0)
    rest = audit_log.query(limit=3, offset=3)

    assert (page.total, len(page.records), len(rest.records)) == (4, 3, 1)
    assert {r.id for r in page.records}.isdisjoint({r.id for r in rest.records})


def test_csv_export_is_masked_filtered_and_safe_for_spreadsheets(audit_log, clock):
    audit_log.record(AuditEvent(type=CHAT_REQUEST, actor=ALICE, outcome='=HYPERLINK("http://x")'))
    audit_log.record(
        AuditEvent(type=LOGIN_SUCCESS, actor=BOB, details={"note": "身份证11010519491231002X"})
    )

    rows = list(csv.DictReader(io.StringIO(audit_log.export_csv(AuditFilters()))))
    only_bob = list(csv.DictReader(io.StringIO(audit_log.export_csv(AuditFilters(actor="bob")))))

    assert [r["type"] for r in rows] == [LOGIN_SUCCESS, CHAT_REQUEST]
    assert "[ID]" in rows[0]["details"] and "11010519491231002X" not in rows[0]["details"]
    assert rows[1]["outcome"].startswith("'=")  # shown as text, never run as a formula
    assert [r["actor"] for r in only_bob] == [BOB]
