"""The chat page: Gradio layout and event wiring only; every decision is in ChatService and the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr

from core.blocking_io import close_off_the_loop
from core.history import History
from core.request_facts import current_user
from webui.admin_service import AdminService
from webui.admin_tab import build_admin_tab
from webui.chat_service import ChatService, ReplyUpdate
from webui.history_sidebar import build_sidebar, export_links, shown_messages, wire_sidebar
from webui.i18n import label, pick_locale, text
from webui.request_context import turn_context
from webui.script_api import register_script_api
from webui.tokens_service import TokensService
from webui.tokens_tab import build_tokens_tab

Messages = list[dict[str, str]]
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans CJK SC", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]


def page_theme() -> gr.themes.Base:
    """Gradio's default look with system fonts only: the page makes no web-font requests."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


@dataclass(frozen=True)
class PageOptions:
    title: str
    export_base: str = ""  # public URL + root path, for links to our own routes
    demo_model: bool = False
    dev_login: bool = False


def build_chat_page(
    service: ChatService,
    history: History,
    options: PageOptions,
    admin: AdminService | None = None,
    tokens: TokensService | None = None,
) -> gr.Blocks:
    """Build the Blocks; nothing runs until the app mounts it.

    The tabs are built per page load for the user on the server session: a non-admin's page has no
    admin components or handlers at all (gr.Tab can only join a gr.Tabs built in the same render).
    """
    with gr.Blocks(title=options.title, analytics_enabled=False) as page:
        if options.demo_model:
            gr.Markdown(label("demo_banner"), elem_id="demo-banner")
        if options.dev_login:
            gr.Markdown(label("dev_login_banner"), elem_id="dev-login-banner")
        conversation = gr.State(None)  # server-side per tab; only an id, re-checked on every read

        @gr.render(triggers=[page.load])
        def tabs(request: gr.Request) -> None:
            user = current_user(request)
            locale = pick_locale(request.headers.get("accept-language"))
            with gr.Row(elem_id="user-bar", equal_height=True):
                with gr.Column(scale=6):
                    gr.Markdown(f"{text('signed_in_as', locale)} **{_escape_md(user.display)}**")
                with gr.Column(scale=1, min_width=120):
                    # A link in the same tab (Markdown links open a new one): the sign-out form.
                    gr.Button(
                        label("logout"),
                        link=f"{options.export_base}/signout",
                        link_target="_self",
                        size="sm",
                        elem_id="logout",
                    )
            with gr.Tabs():
                with gr.Tab(label("chat_tab"), id="chat", elem_id="chat-tab"):
                    chat_tab(service, history, options, conversation, user.key)
                if tokens is not None and user.via_token is None:
                    with gr.Tab(label("tokens_tab"), id="tokens", elem_id="tokens-tab"):
                        build_tokens_tab(tokens, user)
                if admin is not None and user.is_admin:
                    with gr.Tab(label("audit_tab"), id="audit", elem_id="audit-tab"):
                        build_admin_tab(admin, options.export_base)

        register_script_api(service, history)
    return page


def chat_tab(
    service: ChatService,
    history: History,
    options: PageOptions,
    conversation: gr.State,
    owner_key: str,
) -> None:
    """The chat itself: sidebar of conversations, chat window, input and buttons."""
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            new = gr.Button(label("new_chat"), elem_id="new-chat")
            sidebar = build_sidebar(history.list_conversations(owner_key, limit=100))
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(
                label=label("chatbot"),
                elem_id="chatbot",
                sanitize_html=True,
                allow_tags=False,
                feedback_options=None,
                buttons=["copy"],
                height=520,
            )
            with gr.Row():
                box = gr.Textbox(
                    placeholder=label("input_placeholder"),
                    show_label=False,
                    scale=8,
                    elem_id="message",
                    max_lines=8,
                )
                send = gr.Button(label("send"), variant="primary", scale=1, elem_id="send")
                stop = gr.Button(label("stop"), variant="stop", scale=1, elem_id="stop")

    def respond(
        message: str, conversation_id: str | None, request: gr.Request
    ) -> Iterator[tuple[Messages, str, str | None, str]]:
        ctx = turn_context(request)
        message = message or ""  # null from a script: an empty message, refused as such
        shown = _display(history, ctx.user.key, conversation_id, ctx.locale)
        updates = service.reply(ctx, conversation_id, message)
        try:
            for update in updates:
                turn, notice = present(update, message, ctx.locale)
                if notice is not None:
                    gr.Warning(notice)  # a toast: our words, apart from the assistant's
                if turn is None:  # refused: the chat and the typed message stay as they were
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                    return
                conversation_id = update.conversation_id
                links = export_links(options.export_base, conversation_id)
                yield shown + turn, "", conversation_id, links
        finally:
            close_off_the_loop(updates)  # a stop saves the reply: SQL, not on Gradio's loop

    refresh = wire_sidebar(sidebar, history, chatbot, conversation, options.export_base)
    listing = [sidebar.search, conversation]
    private = {"api_visibility": "private"}
    events = []
    for trigger in (box.submit, send.click):
        event = trigger(
            respond,
            inputs=[box, conversation],
            outputs=[chatbot, box, conversation, sidebar.exports],
            concurrency_limit=None,  # the engine's admission gate bounds the work
            **private,
        )
        event.then(refresh, listing, sidebar.conversations, **private)
        events.append(event)
    # Stop cancels the handler; Gradio closes its generator, which stops the engine's thread.
    stop.click(None, cancels=events, **private).then(
        refresh, listing, sidebar.conversations, **private
    )
    new.click(
        lambda: ([], "", None, "", ""),
        outputs=[chatbot, box, conversation, sidebar.title, sidebar.exports],
        **private,
    ).then(refresh, listing, sidebar.conversations, **private)


def present(update: ReplyUpdate, message: str, locale: str) -> tuple[Messages | None, str | None]:
    """What the page shows for one update: the turn's two bubbles (None for a refused turn, which
    leaves the chat as it was) and a notice for a toast (None when there is nothing to say)."""
    if update.status in ("refused", "rate_limited"):
        return None, update.notice
    reply, notice = update.reply, None
    if update.status == "stopped":
        reply = f"{reply}\n\n{text('stopped', locale)}"
    if update.status == "error":
        notice = update.notice or text("engine_error", locale)
        failed = text("reply_failed", locale)  # a marker; what went wrong is in the notice
        reply = f"{reply}\n\n{failed}" if reply else failed
    turn = [{"role": "user", "content": message.strip()}, {"role": "assistant", "content": reply}]
    return turn, notice


def _display(
    history: History, owner_key: str, conversation_id: str | None, locale: str
) -> Messages:
    """The earlier turns as the sidebar shows them (unfinished replies marked)."""
    if conversation_id is None:
        return []
    return shown_messages(history.get_conversation(owner_key, conversation_id).messages, locale)


def _escape_md(value: str) -> str:
    """A display name from the IdP, shown literally (no links, emphasis or HTML)."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|~" else c for c in value)
