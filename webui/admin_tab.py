"""The admin tab: built per request with gr.render, only for admins; non-admin pages contain none of it.

Its tables load when the tab is opened and after each action. A session (or all of a person's
access) is ended by clicking its row, then a button that names the person, then a confirmation:
the browser sends only the row it clicked, looked up in the rows this tab was shown (gr.State,
server-side), never a session handle or a user key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import gradio as gr

from core.audit import EVENT_TYPES
from core.request_facts import current_user, facts_of
from webui.admin_service import (
    AdminContext,
    AdminRefused,
    AdminService,
    AuditQuery,
    AuditView,
    parse_date,
)
from webui.i18n import label, request_locale, text
from webui.people import person
from webui.shown_text import markdown_literal, printable
from webui.tokens_tab import enclosing_tab, row_of, shown_if

COLUMNS = ["col_time", "col_event", "col_user", "col_address", "col_target", "col_outcome",
           "col_details"]  # fmt: skip
SESSION_COLUMNS = ["col_name", "col_email", "col_signed_in", "col_last_seen", "col_address"]
PRIVATE = {"api_visibility": "private"}


@dataclass(frozen=True)
class ShownSession:
    """A session as one row of the sessions table: what a click on that row refers to."""

    handle: str
    user_key: str
    name: str


@dataclass(frozen=True)
class Ending:
    """An ending awaiting confirmation: one session, or every session and token of a user."""

    whole_user: bool
    session: ShownSession


def admin_context(request: gr.Request) -> AdminContext:
    facts = facts_of(request)
    return AdminContext(current_user(request), facts.client_ip, facts.request_id)


def locale_of(request: gr.Request) -> str:
    return request_locale(request)


def build_admin_tab(admin: AdminService, export_base: str) -> None:
    """The audit tab's contents; the page builds it only for admins (and every handler re-checks)."""
    with gr.Column(elem_id="admin-panel") as panel:
        load_audit, audit_inputs, audit_outputs = _audit_section(admin, export_base)
        load_sessions, session_outputs = _sessions_section(admin)
    tab = enclosing_tab(panel)
    if tab is not None:
        tab.select(load_audit, audit_inputs, audit_outputs, **PRIVATE)
        tab.select(load_sessions, None, session_outputs, **PRIVATE)


def _audit_section(admin: AdminService, export_base: str) -> tuple[Any, list[Any], list[Any]]:
    with gr.Row():
        since = gr.Textbox(label=label("since"), placeholder="2026-01-31", elem_id="audit-since")
        until = gr.Textbox(label=label("until"), placeholder="2026-12-31", elem_id="audit-until")
        actor = gr.Textbox(
            label=label("user"), placeholder=label("user_filter_hint"), elem_id="audit-user"
        )
        kind = gr.Dropdown(
            choices=["", *EVENT_TYPES], value="", label=label("event_type"), elem_id="audit-type"
        )
        free = gr.Textbox(label=label("free_text"), elem_id="audit-text")
    with gr.Row(equal_height=True):
        search = gr.Button(label("search"), variant="primary", elem_id="audit-search")
        prev = gr.Button(label("prev_page"), elem_id="audit-prev")
        nxt = gr.Button(label("next_page"), elem_id="audit-next")
        page_no = gr.Number(
            value=1, precision=0, interactive=True, label=label("page"), elem_id="audit-page"
        )
    summary = gr.Markdown(elem_id="audit-summary")
    with gr.Column(visible=False) as table_box:  # shown once loaded, with headers in the language
        # No copy/fullscreen buttons: Gradio labels them in English only (6.31).
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="audit-table", buttons=[])
        export = gr.Markdown(elem_id="audit-export")
    inputs = [since, until, actor, kind, free, page_no]
    outputs = [table, summary, export, page_no, table_box]

    def show(
        since: str, until: str, actor: str, kind: str, free: str, page: int, request: gr.Request
    ) -> tuple[Any, ...]:
        ctx, locale = admin_context(request), locale_of(request)
        try:
            query = _query(since, until, actor, kind, free, page)
        except ValueError:  # a date people can fix: said next to the form, nothing else changes
            return gr.skip(), text("bad_date", locale), gr.skip(), gr.skip(), gr.skip()
        try:
            view = admin.audit_page(ctx, query)
        except AdminRefused:
            return _EMPTY, text("not_allowed", locale), "", 1, shown_if(False)
        if view.total:
            said = text("audit_summary", locale, total=view.total, page=view.page, pages=view.pages)
        else:
            said = text("audit_none", locale)
        link = _export_link(export_base, since, until, actor, kind, free, locale)
        return _audit_table(view, locale), said, link, view.page, shown_if(True)

    def first(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return show(since, until, actor, kind, free, 1, request)

    def goto(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return show(since, until, actor, kind, free, _page(page), request)

    def previous(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return show(since, until, actor, kind, free, _page(page) - 1, request)

    def following(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, ...]:
        return show(since, until, actor, kind, free, _page(page) + 1, request)

    search.click(first, inputs, outputs, **PRIVATE)
    page_no.submit(goto, inputs, outputs, **PRIVATE)
    prev.click(previous, inputs, outputs, **PRIVATE)
    nxt.click(following, inputs, outputs, **PRIVATE)

    def open_audit(
        since: str, until: str, actor: str, kind: str, free: str, page: float, request: gr.Request
    ) -> tuple[Any, ...]:
        """Opening the tab shows the newest records for the filters as they stand."""
        return show(since, until, actor, kind, free, 1, request)

    return open_audit, inputs, outputs


def _sessions_section(admin: AdminService) -> tuple[Any, list[Any]]:
    gr.Markdown(label("active_sessions"))
    gr.Markdown(label("sessions_hint"))
    shown = gr.State([])  # list[ShownSession], in the table's order
    chosen = gr.State(None)  # the clicked row's ShownSession
    pending = gr.State(None)  # the Ending awaiting confirmation
    with gr.Column(visible=False) as listing_box:
        listing = gr.Dataframe(interactive=False, elem_id="sessions-table", buttons=[])
    with gr.Row(visible=False) as end_row:
        end_one = gr.Button(variant="stop", elem_id="session-end")
        end_all = gr.Button(variant="stop", elem_id="user-end")
    with gr.Row(visible=False, elem_id="sessions-confirm-row") as confirm_row:
        question = gr.Markdown(elem_id="sessions-question")
        confirm = gr.Button(label("confirm_end"), variant="stop", elem_id="sessions-confirm")
        cancel = gr.Button(label("cancel"), elem_id="sessions-cancel")
    result = gr.Markdown(elem_id="revoke-result")
    load = gr.Button(label("refresh"), size="sm", elem_id="sessions-refresh")
    outputs = [listing, shown, chosen, pending, end_row, confirm_row, listing_box]

    def listed(request: gr.Request) -> tuple[Any, ...]:
        locale = locale_of(request)
        found = admin.active_sessions(admin_context(request))
        rows, kept = [], []
        for s in found:
            row = [s.user.name or s.user.key, s.user.email or "", _when(s.created_at),
                   _when(s.last_seen), s.ip or ""]  # fmt: skip
            rows.append([printable(cell) for cell in row])
            kept.append(ShownSession(s.id, s.user.key, printable(person(s.user))))
        value = {"headers": [text(c, locale) for c in SESSION_COLUMNS], "data": rows}
        return value, kept, None, None, shown_if(False), shown_if(False), shown_if(True)

    def sessions(request: gr.Request) -> tuple[Any, ...]:
        try:
            found = listed(request)
        except AdminRefused:
            return (*refused(), text("not_allowed", locale_of(request)))
        return (*found, "" if found[1] else text("no_sessions", locale_of(request)))

    def pick(kept: list[ShownSession], request: gr.Request, evt: gr.EventData) -> tuple[Any, ...]:
        locale = locale_of(request)
        row = row_of(evt)
        if row is None or not 0 <= row < len(kept or []):
            nothing = text("nothing_chosen", locale)
            return None, gr.skip(), gr.skip(), shown_if(False), shown_if(False), nothing
        picked = kept[row]
        one = text("end_session", locale, name=picked.name)
        everything = text("end_user", locale, name=picked.name)
        return picked, one, everything, shown_if(True), shown_if(False), ""

    def ask(whole_user: bool, picked: Any, locale: str) -> tuple[Any, ...]:
        if not isinstance(picked, ShownSession):
            return None, "", shown_if(False), text("nothing_chosen", locale)
        key = "end_user_confirm" if whole_user else "end_session_confirm"
        question = text(key, locale, name=markdown_literal(picked.name))
        return Ending(whole_user, picked), question, shown_if(True), ""

    def ask_session(picked: ShownSession | None, request: gr.Request) -> tuple[Any, ...]:
        return ask(False, picked, locale_of(request))

    def ask_user(picked: ShownSession | None, request: gr.Request) -> tuple[Any, ...]:
        return ask(True, picked, locale_of(request))

    def dismiss(request: gr.Request) -> tuple[Any, ...]:
        return None, shown_if(False), text("cancelled", locale_of(request))

    def end(ending: Ending | None, request: gr.Request) -> tuple[Any, ...]:
        ctx, locale = admin_context(request), locale_of(request)
        if not isinstance(ending, Ending):
            return (text("nothing_chosen", locale), *(gr.skip() for _ in outputs))
        target, name = ending.session, markdown_literal(ending.session.name)
        try:
            if ending.whole_user:
                done = admin.revoke_user(ctx, target.user_key)
                message = text("user_ended", locale, name=name, sessions=done.sessions,
                               tokens=done.tokens)  # fmt: skip
            else:
                ended = admin.revoke_session(ctx, target.handle)
                message = text("session_ended" if ended else "session_gone", locale,
                               name=name)  # fmt: skip
            return (message, *listed(request))
        except AdminRefused:
            return (text("not_allowed", locale), *refused())

    def refused() -> tuple[Any, ...]:
        return _EMPTY, [], None, None, shown_if(False), shown_if(False), shown_if(False)

    picked = [chosen, end_one, end_all, end_row, confirm_row, result]
    listing.select(pick, shown, picked, **PRIVATE)
    ask_outputs = [pending, question, confirm_row, result]
    end_one.click(ask_session, chosen, ask_outputs, **PRIVATE)
    end_all.click(ask_user, chosen, ask_outputs, **PRIVATE)
    cancel.click(dismiss, None, [pending, confirm_row, result], **PRIVATE)
    confirm.click(end, pending, [result, *outputs], **PRIVATE)
    load.click(sessions, None, [*outputs, result], **PRIVATE)

    def open_sessions(request: gr.Request) -> tuple[Any, ...]:
        return sessions(request)

    return open_sessions, [*outputs, result]


def _page(value: Any) -> int:
    """A page number from the box (a script may send anything): pages count from 1."""
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1


def _query(since: str, until: str, actor: str, kind: str, free: str, page: int) -> AuditQuery:
    return AuditQuery(
        since=parse_date(since),
        until=parse_date(until),
        actor=(actor or "").strip() or None,
        type=kind or None,
        text=(free or "").strip() or None,
        page=max(1, page),
    )


_EMPTY: dict[str, list] = {"headers": [], "data": []}


def _audit_table(view: AuditView, locale: str) -> dict[str, list]:
    rows = [
        [printable(cell) for cell in (
            _when(r.ts, seconds=True), r.type, view.names.get(r.actor or "", r.actor or ""),
            r.ip or "", r.target or "", r.outcome or "", r.details)]
        for r in view.records
    ]  # fmt: skip
    return {"headers": [text(c, locale) for c in COLUMNS], "data": rows}


def _when(value: Any, seconds: bool = False) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") if value else ""


def _export_link(
    base: str, since: str, until: str, actor: str, kind: str, free: str, locale: str
) -> str:
    params = {"since": since, "until": until, "actor": actor, "type": kind, "text": free}
    query = urlencode({k: v for k, v in params.items() if v}, quote_via=quote)
    return f"[{text('audit_csv', locale)}]({base}/admin/audit.csv?{query})"
