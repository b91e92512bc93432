"""The chat page: Gradio layout and event wiring only; every decision is in ChatService and the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import gradio as gr

from core.blocking_io import close_off_the_loop, run_blocking
from core.history import History
from core.request_facts import current_user, facts_of
from webui.admin_service import AdminService
from webui.admin_tab import build_admin_tab
from webui.chat_display import (
    STOP_SAVE_SECONDS,
    ShownConversation,
    display_when_saved,
    edited_text,
    present,
)
from webui.chat_service import ChatService, ReplyUpdate
from webui.history_sidebar import (
    build_sidebar,
    escape_markdown,
    export_links,
    wire_sidebar,
)
from webui.i18n import label, request_locale, text
from webui.language_switch import language_switch
from webui.reader_time_zone import reader_zone
from webui.request_context import turn_context
from webui.script_api import register_script_api
from webui.shown_reply import ShownReply
from webui.tokens_service import TokensService
from webui.tokens_tab import build_tokens_tab

Messages = list[dict[str, Any]]
ELSEWHERE_POLL_SECONDS = 0.5  # how often a tab offering Stop looks whether that reply has ended


@dataclass(frozen=True)
class Reader:
    """Who the page is rendered for: their key, language and time zone (for the history's days)."""

    owner_key: str
    locale: str
    zone: tzinfo


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
            locale = request_locale(request)
            with gr.Row(elem_id="user-bar", equal_height=True):
                with gr.Column(scale=6):
                    gr.Markdown(
                        f"{text('signed_in_as', locale)} **{escape_markdown(user.display)}**"
                    )
                language_switch(locale)
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
                    reader = Reader(user.key, locale, reader_zone(request))
                    chat_tab(service, history, options, conversation, reader)
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
    reader: Reader,
) -> None:
    """The chat itself: sidebar of conversations, chat window, input and buttons."""
    # On a phone the history is a drawer behind this switch, read by CSS (webui.chat_layout_css).
    gr.Checkbox(label=label("history"), value=False, container=False, elem_id="history-toggle")
    with gr.Row():
        with gr.Column(scale=1, min_width=220, elem_id="history-drawer"):
            new = gr.Button(label("new_chat"), elem_id="new-chat")
            found = history.list_conversations(reader.owner_key, limit=100)
            sidebar = build_sidebar(
                found, reader.locale, datetime.now(UTC), history.undo_window, reader.zone
            )
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(
                label=label("chatbot"),
                elem_id="chatbot",
                sanitize_html=True,
                allow_tags=False,
                feedback_options=None,
                buttons=["copy"],
                height=520,
                # Each message in a box of its own: our notices never join the reply before them.
                group_consecutive_messages=False,
            )
            with gr.Row():
                box = gr.Textbox(
                    label=label("message_label"),  # for screen readers; the placeholder shows
                    placeholder=label("input_placeholder"),
                    show_label=False,
                    scale=8,
                    min_width=240,  # on a phone the buttons go below, the box keeps the width
                    elem_id="message",
                    max_lines=8,
                )
                # Two sets of buttons, one shown at a time: Send when no reply runs; a greyed-out
                # Send and Stop while one does. Only the groups' visibility changes, never a
                # component's props, so a tab's rendered components stay the ones its page
                # sessions sweep ("hidden" keeps a group in the page, out of the layout).
                with gr.Column(scale=1, min_width=150):
                    with gr.Group(elem_id="reply-idle") as ready:
                        send = gr.Button(label("send"), variant="primary", elem_id="send")
                    with gr.Group(elem_id="reply-running", visible="hidden") as busy, gr.Row():
                        gr.Button(
                            label("send"),
                            variant="primary",
                            interactive=False,
                            elem_id="send-busy",
                            min_width=60,
                        )
                        stop = gr.Button(
                            label("stop"), variant="secondary", elem_id="stop", min_width=60
                        )

    def run_turn(
        message: str, conversation_id: str | None, request: gr.Request, replace_last: bool
    ) -> Iterator[tuple[Any, ...]]:
        """A reply's updates for the page; with `replace_last`, one that takes the place of the
        last turn (`message` edited, or empty to ask the same question again)."""
        sent = _sent_at(request)
        mine = on_screen.claim(sent, wait=STOP_SAVE_SECONDS)
        if not ShownReply.shown(mine):
            return  # sent before New chat was pressed: never started, never shown
        if on_screen.starts_afresh(sent):
            conversation_id = None  # New chat was pressed first; the tab's state lags behind
        updates: Generator[ReplyUpdate, None, None] | None = None
        try:
            ctx = turn_context(request)
            was = ShownConversation.read(history, ctx.user.key, conversation_id, ctx.locale)
            if replace_last:  # the typed text stays in the box
                shown, question = was.without_last, message or was.last_question
                kept = sent = gr.update()
            else:
                shown, question, kept, sent = was.messages, message, message, ""
            links = export_links(options.export_base, conversation_id)
            # The page as it is (values, not prop updates), with Stop in place at once.
            yield was.messages, kept, conversation_id, links, *running()
            updates = service.reply(
                ctx, conversation_id, message, report_queue=True, replace_last=replace_last
            )
            for update in updates:
                if mine is not None and not on_screen.holds(mine):
                    # New chat or Clear: this reply stops (saved as such), off the page. Its last
                    # output changes nothing: Gradio's client applies an event's last output again
                    # when the event completes, which may be after New chat has emptied the page.
                    yield (gr.skip(),) * len(turn_outputs)
                    return
                turn, toast = present(update, question, ctx.locale)
                if toast is not None:
                    gr.Warning(toast)  # a toast: our words, apart from the assistant's
                if turn is None:  # refused: the chat and the typed message stay as they were
                    yield was.messages, kept, conversation_id, links, *idle()
                    return
                conversation_id = update.conversation_id  # None once it was deleted meanwhile
                links = export_links(options.export_base, conversation_id)
                # Every update says "running" again: a refused second send (Enter while a reply
                # streams) sets the buttons idle, and the running reply takes them back.
                buttons = running() if update.status in ("queued", "streaming") else idle()
                yield shown + turn, sent, conversation_id, links, *buttons
                sent = gr.update()  # emptied once: what is typed while the reply runs is kept
        finally:
            if updates is not None:  # a stop saves the reply: SQL, not on Gradio's loop
                close_off_the_loop(updates)
            on_screen.release(mine)  # after the close: a reply waiting for the window can start

    def respond(
        message: str, conversation_id: str | None, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        # null from a script: an empty message, refused as such
        yield from run_turn(message or "", conversation_id, request, replace_last=False)

    def regenerate(conversation_id: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        yield from run_turn("", conversation_id, request, replace_last=True)

    def edit_last(
        conversation_id: str | None, edited: gr.EventData, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        # gr.EventData, not gr.EditData: anyone can call with no event data, which EditData
        # cannot even be built from; here that is an edit of nothing.
        ctx = turn_context(request)
        was = ShownConversation.read(history, ctx.user.key, conversation_id, ctx.locale)
        data = edited._data if isinstance(edited._data, dict) else {}
        words = edited_text(data.get("value"))
        if data.get("index") != was.last_question_index or not words.strip():
            # Only the last question can change (earlier replies answered the words they had).
            gr.Warning(text("edit_last_only" if words.strip() else "empty", ctx.locale))
            yield was.messages, gr.update(), conversation_id, gr.update(), *idle()
            return
        yield from run_turn(words, conversation_id, request, replace_last=True)

    def show_stopped(query: str, conversation_id: str | None, request: gr.Request) -> list[Any]:
        # A stopped handler yields nothing more: the chat is shown as saved, notice included.
        ctx = turn_context(request)
        try:
            shown = display_when_saved(history, ctx.user.key, conversation_id, ctx.locale)
        except LookupError:  # deleted meanwhile (in another tab)
            shown, conversation_id = [], None
        return [shown, *refresh(query, conversation_id, request)]

    def start_afresh(request: gr.Request) -> tuple[Any, ...]:
        if on_screen.take_back(_sent_at(request), wait=STOP_SAVE_SECONDS):
            # A message sent right after this click already runs, in a new conversation.
            return gr.update(), gr.update(), "", gr.update(), *running()
        return [], None, "", "", *idle()

    def refresh_after_reset(query: str, current: str | None, request: gr.Request) -> list[Any]:
        on_screen.reset_done()  # New chat's outputs are in the tab's state now
        return refresh(query, current, request)

    async def refresh_after_reply(
        query: str, current: str | None, request: gr.Request
    ) -> AsyncIterator[list[Any]]:
        # Idle again whatever ended the reply (a broken handler included), and the list updated.
        # A reply of the user's still running elsewhere (another tab, a script: this send was
        # refused, "one at a time") keeps Stop offered here until it ends, so it can be stopped.
        shown = await run_blocking(refresh, query, current, request)
        user_key = current_user(request).key
        if await run_blocking(service.reply_running, user_key):
            yield [*shown, *running()]
            while await run_blocking(service.reply_running, user_key):
                await asyncio.sleep(ELSEWHERE_POLL_SECONDS)
        yield [*shown, *idle()]

    on_screen = ShownReply()
    refresh = wire_sidebar(sidebar, history, chatbot, conversation, options.export_base)
    listing = [sidebar.search, conversation]
    private = {"api_visibility": "private"}
    buttons = [ready, busy]
    events = []
    turn_outputs = [chatbot, box, conversation, sidebar.exports, *buttons]
    # Send, Enter, the last reply's retry button and an edited last question all run a turn.
    for trigger, handler, inputs in (
        (box.submit, respond, [box, conversation]),
        (send.click, respond, [box, conversation]),
        (chatbot.retry, regenerate, [conversation]),
        (chatbot.edit, edit_last, [conversation]),
    ):
        event = trigger(
            handler,
            inputs=inputs,
            outputs=turn_outputs,
            concurrency_limit=None,  # the engine's admission gate bounds the work
            **private,
        )
        event.then(refresh_after_reply, listing, [*sidebar.listing, *buttons], **private)
        events.append(event)

    def stop_reply(request: gr.Request) -> tuple[dict[str, Any], dict[str, Any]]:
        # The user's reply wherever it runs (this tab, another, a script, another replica).
        service.stop(current_user(request).key)
        return idle()

    # Stop also cancels this tab's handler (Gradio closes its generator, which stops the engine's
    # thread): the tab's own reply stops even when shared state is unreachable.
    stop.click(stop_reply, None, buttons, cancels=events, **private).then(
        show_stopped, listing, [chatbot, *sidebar.listing], **private
    )
    # New chat and the chat window's Clear both start a new conversation: the next message never
    # lands in the one left behind, and a reply still running stops at its next update. (Not
    # Gradio's cancels: those cancel whatever runs when they arrive, a message just sent included.)
    # The message box is left alone: what the person is typing meanwhile is theirs.
    fresh = [chatbot, conversation, sidebar.title, sidebar.exports, *buttons]
    for trigger in (new.click, chatbot.clear):
        trigger(start_afresh, None, fresh, **private).then(
            refresh_after_reset, listing, sidebar.listing, **private
        )


def running() -> tuple[dict[str, Any], dict[str, Any]]:
    """The buttons while a reply runs: Send greyed out, Stop shown."""
    return gr.update(visible="hidden"), gr.update(visible=True)


def idle() -> tuple[dict[str, Any], dict[str, Any]]:
    """The buttons with no reply running: Send usable, no Stop."""
    return gr.update(visible=True), gr.update(visible="hidden")


def _sent_at(request: gr.Request) -> float:
    """When the click behind `request` reached the server (now, if no middleware said)."""
    arrived = facts_of(request).arrived
    return time.monotonic() if arrived is None else arrived
