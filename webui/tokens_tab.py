"""The "API tokens" tab: create (shown once), list and revoke; admins also see everyone's tokens.

Built per page load inside the page's gr.Tabs; the admin part exists only on admins' pages, and every
handler re-checks the user from the request (hidden Gradio handlers are still callable).
"""

from __future__ import annotations

from datetime import datetime

import gradio as gr

from core.api_tokens import ApiToken
from core.identity import User
from core.request_facts import current_user, facts_of
from webui.tokens_service import TokenContext, TokenRequestInvalid, TokensRefused, TokensService

COLUMNS = [
    "id",
    "name",
    "status",
    "created",
    "expires",
    "last used",
    "last IP",
    "IP ranges",
    "admin",
]
ADMIN_COLUMNS = ["owner", *COLUMNS]
Rows = list[list[str]]


def token_context(request: gr.Request) -> TokenContext:
    facts = facts_of(request)
    return TokenContext(current_user(request), facts.client_ip, facts.request_id)


def build_tokens_tab(service: TokensService, user: User) -> None:
    """The tab's contents for `user` (call inside `with gr.Tab(...)` in the page's render)."""
    settings = service.settings
    gr.Markdown(
        "Tokens let scripts use this chat as you with `gradio_client` "
        '(`Client(url, headers={"Authorization": "Bearer <token>"})`). '
        "A token is shown once, when you create it; revoke it as soon as you no longer need it."
    )
    with gr.Row():
        name = gr.Textbox(label="Token name", max_lines=1, elem_id="token-name")
        days = gr.Number(
            value=settings.default_days,
            precision=0,
            minimum=1,
            maximum=settings.token_max_days,
            label=f"Expires in (days, at most {settings.token_max_days})",
            elem_id="token-days",
        )
        cidrs = gr.Textbox(
            label="Allowed source addresses (optional)",
            placeholder="10.20.0.0/16, 192.0.2.7",
            max_lines=1,
            elem_id="token-cidrs",
        )
        admin_scope = gr.Checkbox(
            value=False, label="Admin scope", visible=user.is_admin, elem_id="token-admin"
        )
    create = gr.Button("Create token", variant="primary", elem_id="token-create")
    secret = gr.Textbox(
        label="Your new token: copy it now, it will not be shown again",
        interactive=False,
        buttons=["copy"],
        elem_id="token-secret",
    )
    notice = gr.Markdown(elem_id="token-notice")
    listing = gr.Dataframe(
        value=_rows(service.list_mine(TokenContext(user)), service.now()),
        headers=COLUMNS,
        interactive=False,
        elem_id="token-table",
    )
    with gr.Row():
        target = gr.Textbox(label="Token id to revoke", max_lines=1, elem_id="token-revoke-id")
        revoke = gr.Button("Revoke", variant="stop", elem_id="token-revoke")

    def on_create(
        name: str, days: float, cidrs: str, admin: bool, request: gr.Request
    ) -> tuple[str, str, Rows]:
        ctx = token_context(request)
        try:
            made = service.create(ctx, name or "", int(days or 0), cidrs or "", bool(admin))
        except TokenRequestInvalid as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except TokensRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        return (
            made.secret,
            f"Token **{made.token.name}** created.",
            _rows(service.list_mine(ctx), service.now()),
        )

    def on_revoke(token_id: str, request: gr.Request) -> tuple[str, Rows]:
        ctx = token_context(request)
        try:
            done = service.revoke_mine(ctx, token_id or "")
        except TokensRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        message = "Token revoked." if done else "No such active token of yours."
        return message, _rows(service.list_mine(ctx), service.now())

    private = {"api_visibility": "private"}
    create.click(on_create, [name, days, cidrs, admin_scope], [secret, notice, listing], **private)
    revoke.click(on_revoke, target, [notice, listing], **private)
    if user.is_admin:
        _admin_section(service)


def _admin_section(service: TokensService) -> None:
    gr.Markdown("### Everyone's tokens (admins)")
    listing = gr.Dataframe(headers=ADMIN_COLUMNS, interactive=False, elem_id="all-tokens-table")
    with gr.Row():
        target = gr.Textbox(label="Token id to revoke", max_lines=1, elem_id="any-token-id")
        load = gr.Button("Refresh", elem_id="all-tokens-refresh")
        revoke = gr.Button("Revoke", variant="stop", elem_id="any-token-revoke")
    notice = gr.Markdown(elem_id="any-token-notice")

    def everyone(request: gr.Request) -> Rows:
        try:
            found = service.list_all(token_context(request))
        except TokensRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        return [
            [t.owner.key, *row] for t, row in zip(found, _rows(found, service.now()), strict=True)
        ]

    def revoke_any(token_id: str, request: gr.Request) -> tuple[str, Rows]:
        try:
            done = service.revoke_any(token_context(request), token_id or "")
        except TokensRefused:
            raise gr.Error("Not allowed.", print_exception=False) from None
        return ("Token revoked." if done else "No such active token."), everyone(request)

    private = {"api_visibility": "private"}
    load.click(everyone, None, listing, **private)
    revoke.click(revoke_any, target, [notice, listing], **private)


def _rows(tokens: list[ApiToken], now: datetime) -> Rows:
    return [
        [t.id, t.name, t.status(now), _when(t.created_at), _when(t.expires_at),
         _when(t.last_used_at), t.last_ip or "", ", ".join(t.source_cidrs),
         "yes" if t.admin_scope else ""]
        for t in tokens
    ]  # fmt: skip


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="minutes") if value else ""
