"""The "API tokens" tab: create (shown once), list and revoke; admins also see everyone's tokens.

Built per page load inside the page's gr.Tabs; the admin part exists only on admins' pages, and every
handler re-checks the user from the request (hidden Gradio handlers are still callable). Tables load
when the tab is opened and after each action. A token is revoked by clicking its row, then the
Revoke button that names it, then a confirmation: the browser never sends a token id, only the row
it clicked, looked up in the rows this tab was shown (kept server-side in gr.State).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gradio as gr

from core.api_tokens import ApiToken
from core.identity import User
from core.request_facts import current_user, facts_of
from webui.i18n import label, request_locale, text
from webui.people import person
from webui.shown_text import markdown_literal, printable
from webui.tokens_service import TokenContext, TokenRequestInvalid, TokensRefused, TokensService

COLUMNS = [
    "col_name",
    "col_status",
    "col_created",
    "col_expires",
    "col_last_used",
    "col_last_ip",
    "col_ranges",
    "col_admin",
]
ADMIN_COLUMNS = ["col_owner", "col_email", *COLUMNS]
PRIVATE = {"api_visibility": "private"}
Table = dict[str, list]


@dataclass(frozen=True)
class Shown:
    """A token as one row of a table on the page: what a click on that row refers to."""

    id: str
    name: str
    status: str
    owner: str = ""  # the owner's name or e-mail, in the admins' table


def token_context(request: gr.Request) -> TokenContext:
    facts = facts_of(request)
    return TokenContext(current_user(request), facts.client_ip, facts.request_id)


def locale_of(request: gr.Request) -> str:
    return request_locale(request)


def enclosing_tab(block: gr.blocks.Block) -> gr.Tab | None:
    """The gr.Tab a block was built in (the page builds the tab; its `select` loads our tables)."""
    parent = block.parent
    while parent is not None and not isinstance(parent, gr.Tab):
        parent = parent.parent
    return parent


def build_tokens_tab(service: TokensService, user: User) -> None:
    """The tab's contents for `user` (call inside `with gr.Tab(...)` in the page's render)."""
    settings = service.settings
    with gr.Column(elem_id="tokens-panel") as panel:
        gr.Markdown(label("tokens_intro"))
        with gr.Row():
            name = gr.Textbox(label=label("token_name"), max_lines=1, elem_id="token-name")
            # No minimum/maximum here: Gradio would refuse out-of-range values with an error
            # popup; the service checks the range and the tab says what to fix.
            days = gr.Number(
                value=settings.default_days,
                precision=0,
                interactive=True,
                label=label("token_days") + f" (1–{settings.token_max_days})",
                elem_id="token-days",
            )
            cidrs = gr.Textbox(
                label=label("token_cidrs"),
                placeholder="10.20.0.0/16, 192.0.2.7",
                max_lines=1,
                elem_id="token-cidrs",
            )
            admin_scope = gr.Checkbox(
                value=False,
                interactive=True,
                label=label("token_admin"),
                visible=user.is_admin,
                elem_id="token-admin",
            )
        create = gr.Button(label("token_create"), variant="primary", elem_id="token-create")
        notice = gr.Markdown(elem_id="token-notice")
        with gr.Column(visible=False) as secret_box:
            secret = gr.Textbox(
                label=label("token_secret"),
                interactive=False,
                buttons=["copy"],
                elem_id="token-secret",
            )
        mine = _RevokeFlow("token")

    def load_mine(request: gr.Request) -> tuple[Any, ...]:
        ctx, locale = token_context(request), locale_of(request)
        return mine.listed(_table(service.list_mine(ctx), service.now(), locale))

    def on_create(
        name: str, days: float, cidrs: str, admin: bool, request: gr.Request
    ) -> tuple[Any, ...]:
        ctx, locale = token_context(request), locale_of(request)
        try:
            made = service.create(ctx, str(name or ""), _whole(days), str(cidrs or ""), bool(admin))
        except TokenRequestInvalid as exc:
            return (gr.skip(), exc.message(locale), *mine.unchanged(), gr.skip())
        except TokensRefused:
            return (gr.skip(), text("not_allowed", locale), *mine.unchanged(), gr.skip())
        listed = _table(service.list_mine(ctx), service.now(), locale)
        created = text("token_created", locale, name=markdown_literal(made.token.name))
        return (made.secret, created, *mine.listed(listed), shown_if(True))

    def on_revoke(pending: Shown | None, request: gr.Request) -> tuple[Any, ...]:
        ctx, locale = token_context(request), locale_of(request)
        if not isinstance(pending, Shown):
            return (text("nothing_chosen", locale), *mine.unchanged(), gr.skip(), gr.skip())
        try:
            done = service.revoke_mine(ctx, pending.id)
        except TokensRefused:
            return (text("not_allowed", locale), *mine.unchanged(), gr.skip(), gr.skip())
        message = text("token_revoked" if done else "token_gone", locale, name=_md(pending))
        listed = _table(service.list_mine(ctx), service.now(), locale)
        # A secret still on screen may be the revoked token's: it goes with the revoke.
        return (message, *mine.listed(listed), "", shown_if(False))

    create.click(
        on_create,
        [name, days, cidrs, admin_scope],
        [secret, notice, *mine.outputs, secret_box],
        **PRIVATE,
    )
    mine.wire(on_revoke, notice, after=[secret, secret_box])
    loaders = [(load_mine, mine.outputs)]
    if user.is_admin:
        loaders.append(_admin_section(service))
    tab = enclosing_tab(panel)
    if tab is not None:
        for load, outputs in loaders:
            tab.select(load, None, outputs, **PRIVATE)


def _admin_section(service: TokensService) -> tuple[Callable[..., Any], list[Any]]:
    """Everyone's tokens; returns the loader and its outputs, for the tab's `select`."""
    gr.Markdown(label("all_tokens"))
    notice = gr.Markdown(elem_id="any-token-notice")
    with gr.Column():
        everyone_flow = _RevokeFlow("any-token", table_id="all-tokens")
        load = gr.Button(label("refresh"), size="sm", elem_id="all-tokens-refresh")

    def everyone(request: gr.Request) -> tuple[Any, ...]:
        locale = locale_of(request)
        try:
            found = service.list_all(token_context(request))
        except TokensRefused:
            return (text("not_allowed", locale), *everyone_flow.listed(_REFUSED))
        return ("", *everyone_flow.listed(_table(found, service.now(), locale, admin=True)))

    def revoke_any(pending: Shown | None, request: gr.Request) -> tuple[Any, ...]:
        ctx, locale = token_context(request), locale_of(request)
        if not isinstance(pending, Shown):
            return (text("nothing_chosen", locale), *everyone_flow.unchanged())
        try:
            done = service.revoke_any(ctx, pending.id)
            found = service.list_all(ctx)
        except TokensRefused:
            return (text("not_allowed", locale), *everyone_flow.listed(_REFUSED))
        message = text("token_revoked" if done else "token_gone", locale, name=_md(pending))
        return (message, *everyone_flow.listed(_table(found, service.now(), locale, admin=True)))

    outputs = [notice, *everyone_flow.outputs]
    load.click(everyone, None, outputs, **PRIVATE)
    everyone_flow.wire(revoke_any, notice)

    def open_everyone(request: gr.Request) -> tuple[Any, ...]:
        return everyone(request)

    return open_everyone, outputs


def shown_if(visible: bool) -> dict[str, Any]:
    """A layout block's visibility. Handlers change only layout visibility and component values:
    a changed component prop makes Gradio swap in a copy for the tab (webui/gradio_state.py)."""
    return gr.update(visible=visible)


class _RevokeFlow:
    """A table of tokens, the Revoke button naming the clicked one, and the confirmation row."""

    def __init__(self, elem: str, table_id: str = "token") -> None:
        self.shown = gr.State([])  # list[Shown], in the table's order
        self.chosen = gr.State(None)  # the clicked row's Shown
        self.pending = gr.State(None)  # the Shown awaiting confirmation
        with gr.Column(visible=False) as self.box:
            gr.Markdown(label("token_pick_hint"), elem_id=f"{table_id}-hint")
            # No copy/fullscreen buttons: Gradio labels them in English only (6.31).
            self.table = gr.Dataframe(interactive=False, elem_id=f"{table_id}-table", buttons=[])
            with gr.Row(visible=False) as self.revoke_row:
                self.revoke = gr.Button(label("revoke"), variant="stop", elem_id=f"{elem}-revoke")
            with gr.Row(visible=False, elem_id=f"{elem}-confirm-row") as self.confirm_row:
                self.question = gr.Markdown(elem_id=f"{elem}-question")
                self.confirm = gr.Button(
                    label("confirm_revoke"), variant="stop", elem_id=f"{elem}-confirm"
                )
                self.cancel = gr.Button(label("cancel"), elem_id=f"{elem}-cancel")

    @property
    def outputs(self) -> list[Any]:
        """What a (re)load sets: the table, its rows, and a reset of the choice and confirmation."""
        return [self.table, self.shown, self.chosen, self.pending, self.revoke_row,
                self.confirm_row, self.box]  # fmt: skip

    def listed(self, table: tuple[Table, list[Shown]]) -> tuple[Any, ...]:
        value, shown = table
        return value, shown, None, None, shown_if(False), shown_if(False), shown_if(True)

    def unchanged(self) -> tuple[Any, ...]:
        return tuple(gr.skip() for _ in self.outputs)

    def wire(
        self,
        revoke: Callable[..., tuple[Any, ...]],
        notice: gr.Markdown,
        after: list[Any] | None = None,
    ) -> None:
        """`revoke` answers the notice, the reload outputs, and then `after`."""

        def pick(shown: list[Shown], request: gr.Request, evt: gr.EventData) -> tuple[Any, ...]:
            locale = locale_of(request)
            row = row_of(evt)
            hide = (None, gr.skip(), shown_if(False), shown_if(False))
            if row is None or not 0 <= row < len(shown or []):
                return (*hide, text("nothing_chosen", locale))
            token = shown[row]
            if token.status != "active":
                status = text(f"status_{token.status}", locale)
                return (*hide, text("token_not_active", locale, name=_md(token), status=status))
            named = text("revoke_named", locale, name=printable(token.name))
            return token, named, shown_if(True), shown_if(False), ""

        def ask(chosen: Shown | None, request: gr.Request) -> tuple[Any, ...]:
            locale = locale_of(request)
            if not isinstance(chosen, Shown):
                return None, "", shown_if(False), text("nothing_chosen", locale)
            owner = markdown_literal(chosen.owner)
            owner = text("revoke_confirm_owner", locale, owner=owner) if owner else ""
            question = text("revoke_confirm", locale, name=_md(chosen), owner=owner)
            return chosen, question, shown_if(True), ""

        def cancel(request: gr.Request) -> tuple[Any, ...]:
            return None, shown_if(False), text("cancelled", locale_of(request))

        picked = [self.chosen, self.revoke, self.revoke_row, self.confirm_row, notice]
        self.table.select(pick, self.shown, picked, **PRIVATE)
        asked = [self.pending, self.question, self.confirm_row, notice]
        self.revoke.click(ask, self.chosen, asked, **PRIVATE)
        self.cancel.click(cancel, None, [self.pending, self.confirm_row, notice], **PRIVATE)
        outputs = [notice, *self.outputs, *(after or [])]
        self.confirm.click(revoke, self.pending, outputs, **PRIVATE)


def _whole(days: Any) -> int:
    """Days from the number box; anything a script sends that is not a number is 0 (refused)."""
    try:
        return int(days or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _md(token: Shown) -> str:
    return markdown_literal(token.name)


def row_of(evt: gr.EventData | None) -> int | None:
    """The clicked row of a table's `select` event. Read from gr.EventData, not gr.SelectData,
    whose constructor fails inside Gradio on event data a script made up (or left out)."""
    try:
        index = evt.index  # type: ignore[union-attr]
    except (AttributeError, TypeError, KeyError, IndexError):
        return None
    if isinstance(index, (list, tuple)) and index and type(index[0]) is int:
        return index[0]
    return None


def _table(
    tokens: list[ApiToken], now: datetime, locale: str, admin: bool = False
) -> tuple[Table, list[Shown]]:
    """The table's value (headers in the user's language) and the tokens behind its rows; the
    admins' table names each owner."""
    columns = ADMIN_COLUMNS if admin else COLUMNS
    rows, shown = [], []
    for t in tokens:
        status = t.status(now)
        row = [t.name, text(f"status_{status}", locale), _when(t.created_at),
               _when(t.expires_at), _when(t.last_used_at), t.last_ip or "",
               ", ".join(t.source_cidrs), text("yes", locale) if t.admin_scope else ""]  # fmt: skip
        if admin:
            row = [t.owner.name or t.owner.key, t.owner.email or "", *row]
        rows.append([printable(cell) for cell in row])
        shown.append(Shown(t.id, t.name, status, printable(person(t.owner)) if admin else ""))
    return {"headers": [text(c, locale) for c in columns], "data": rows}, shown


_REFUSED: tuple[Table, list[Shown]] = ({"headers": [""] * len(ADMIN_COLUMNS), "data": []}, [])


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""
