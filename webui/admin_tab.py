"""The admin tab: built per request with gr.render, only for admins; non-admin pages contain none of it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import gradio as gr

from core.audit import EVENT_TYPES
from core.request_facts import current_user, facts_of
from core.sessions import HANDLE_PREFIX
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    parse_date,
)
from webui.i18n import label

COLUMNS = ["id", "time (UTC)", "type", "user", "ip", "target", "outcome", "details"]
SESSION_COLUMNS = ["handle", "user", "created", "last seen", "ip"]


def admin_context(request: gr.Request) -> AdminContext:
    facts = facts_of(request)
    return AdminContext(current_user(request), facts.client_ip, facts.request_id)


def build_admin_tab(admin: AdminService, export_base: str) -> None:
    """The audit tab's contents; the page builds it only for admins (and every handler re-checks)."""
    _audit_section(admin, export_base)
    _sessions_section(admin)


def _audit_section(admin: AdminService, export_base: str) -> None:
    with gr.Row():
        since = gr.Textbox(label=label("since"), placeholder="2026-01-31", elem_id="audit-since")
        until = gr.Textbox(label=label("until"), placeholder="2026-12-31", elem_id="audit-until")
        actor = gr.Textbox(label=label("user"), elem_id="audit-user")
        kind = gr.Dropdown(
            choices=["", *EVENT_TYPES], value="", label=label("event_type"), elem_id="audit-type"
        )
        free = gr.Textbox(label=label("free_text"), elem_id="audit-text")
    with gr.Row():
        search = gr.Button(label("search"), variant="primary", elem_id="audit-search")
        prev = gr.Button("◀", elem_id="audit-prev")
        nxt = gr.Button("▶", elem_id="audit-next")
        page_no = gr.Number(value=0, precision=0, label=label("page"), elem_id="audit-page")
    summary = gr.Markdown(elem_id="audit-summary")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="audit-table")
    export = gr.Markdown(elem_id="audit-export")
    inputs = [since, until, actor, kind, free, page_no]

    def show(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, str, str, int]:
        ctx = admin_context(request)
        try:
            query = _query(since, until, actor, kind, free, int(page or 0))
            result = admin.audit_page(ctx, query)
        except ValueError:
            raise gr.Error(
                "Dates must look like 2026-01-31 or 2026-01-31T12:00.", print_exception=False
            ) from None
        except AdminRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        rows = [
            [r.id, r.ts.isoformat(timespec="seconds"), r.type, r.actor or "", r.ip or "",
             r.target or "", r.outcome or "", r.details]
            for r in result.records
        ]  # fmt: skip
        pages = max(1, -(-result.total // result.limit))
        link = _export_link(export_base, since, until, actor, kind, free)
        return rows, f"{result.total} records · page {query.page + 1} of {pages}", link, query.page

    def first(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, str, str, int]:
        return show(since, until, actor, kind, free, 0, request)

    def previous(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, str, str, int]:
        return show(since, until, actor, kind, free, max(0, int(page or 0) - 1), request)

    def following(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, str, str, int]:
        return show(since, until, actor, kind, free, int(page or 0) + 1, request)

    private = {"api_visibility": "private"}
    outputs = [table, summary, export, page_no]
    search.click(first, inputs, outputs, **private)
    prev.click(previous, inputs, outputs, **private)
    nxt.click(following, inputs, outputs, **private)


def _sessions_section(admin: AdminService) -> None:
    gr.Markdown(label("active_sessions"))
    listing = gr.Dataframe(headers=SESSION_COLUMNS, interactive=False, elem_id="sessions-table")
    with gr.Row():
        handle = gr.Textbox(label=label("session_or_user"), elem_id="revoke-target")
        load = gr.Button(label("refresh"), elem_id="sessions-refresh")
        revoke = gr.Button(label("revoke"), variant="stop", elem_id="sessions-revoke")
    result = gr.Markdown(elem_id="revoke-result")

    def sessions(request: gr.Request) -> list[list[str]]:
        try:
            found = admin.active_sessions(admin_context(request))
        except AdminRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        return [
            [s.id, s.user.key, s.created_at.isoformat(timespec="seconds"),
             s.last_seen.isoformat(timespec="seconds"), s.ip or ""]
            for s in found
        ]  # fmt: skip

    def end(target: str, request: gr.Request) -> tuple[str, list[list[str]]]:
        ctx = admin_context(request)
        target = (target or "").strip()  # null from a script: nothing to end
        try:
            if target.startswith(HANDLE_PREFIX):
                message = (
                    "Session ended." if admin.revoke_session(ctx, target) else "No such session."
                )
            elif target:
                done = admin.revoke_user(ctx, target)
                message = f"{done.sessions} session(s) ended, {done.tokens} API token(s) revoked."
            else:
                message = "Enter a session handle or a user key from the table."
        except AdminRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        return message, sessions(request)

    private = {"api_visibility": "private"}
    load.click(sessions, None, listing, **private)
    revoke.click(end, handle, [result, listing], **private)


def _query(since: str, until: str, actor: str, kind: str, free: str, page: int) -> AuditQuery:
    return AuditQuery(
        since=parse_date(since),
        until=parse_date(until),
        actor=(actor or "").strip() or None,
        type=kind or None,
        text=(free or "").strip() or None,
        page=max(0, page),
    )


def _export_link(base: str, since: str, until: str, actor: str, kind: str, free: str) -> str:
    params = {"since": since, "until": until, "actor": actor, "type": kind, "text": free}
    query = urlencode({k: v for k, v in params.items() if v}, quote_via=quote)
    return f"⤓ [CSV]({base}/admin/audit.csv?{query})"
