"""The chat page: Gradio layout and event wiring only; every decision is in ChatService and the store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr

from webui.admin_service import AdminService
from webui.admin_tab import build_admin_tab
from webui.chat_service import ChatService, History
from webui.history_sidebar import build_sidebar, export_links, wire_sidebar
from webui.i18n import label, text
from webui.request_context import turn_context
from webui.script_api import register_script_api

Messages = list[dict[str, str]]


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
) -> gr.Blocks:
    """Build the Blocks; nothing runs until the app mounts it."""
    with gr.Blocks(title=options.title, analytics_enabled=False) as page:
        if options.demo_model:
            gr.Markdown(label("demo_banner"), elem_id="demo-banner")
        if options.dev_login:
            gr.Markdown(label("dev_login_banner"), elem_id="dev-login-banner")
        with gr.Tabs():
            with gr.Tab(label("chat_tab"), id="chat", elem_id="chat-tab"):
                chat_tab(page, service, history, options)
            if admin is not None:
                build_admin_tab(admin, page, options.export_base)
        register_script_api(service, history)
    return page


def chat_tab(page: gr.Blocks, service: ChatService, history: History, options: PageOptions) -> None:
    """The chat itself: sidebar of conversations, chat window, input and buttons."""
    conversation = gr.State(None)  # server-side per tab; only an id, re-checked on every read
    with gr.Row():
        with gr.Column(scale=1, min_width=220):
            new = gr.Button(label("new_chat"), elem_id="new-chat")
            sidebar = build_sidebar()
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
        shown = _display(history, ctx.user.key, conversation_id)
        with contextlib.closing(service.reply(ctx, conversation_id, message)) as updates:
            for update in updates:
                if update.status == "refused":
                    notice = [{"role": "assistant", "content": update.notice or ""}]
                    yield shown + notice, message, conversation_id, gr.skip()
                    return
                conversation_id = update.conversation_id
                reply = update.reply
                if update.status == "stopped":
                    reply = f"{reply}\n\n{text('stopped', ctx.locale)}"
                if update.notice:
                    reply = f"{reply}\n\n{update.notice}" if reply else update.notice
                turn = [
                    {"role": "user", "content": message.strip()},
                    {"role": "assistant", "content": reply},
                ]
                links = export_links(options.export_base, conversation_id)
                yield shown + turn, "", conversation_id, links

    refresh = wire_sidebar(sidebar, history, chatbot, conversation, options.export_base)
    listing = [sidebar.search, conversation]
    private = {"api_visibility": "private"}
    events = []
    for trigger, name in ((box.submit, "ui_submit"), (send.click, "ui_send")):
        event = trigger(
            respond,
            inputs=[box, conversation],
            outputs=[chatbot, box, conversation, sidebar.exports],
            api_name=name,
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
    page.load(refresh, listing, sidebar.conversations, **private)


def _display(history: History, owner_key: str, conversation_id: str | None) -> Messages:
    if conversation_id is None:
        return []
    conversation = history.get_conversation(owner_key, conversation_id)
    return [{"role": m.role, "content": m.content} for m in conversation.messages]
