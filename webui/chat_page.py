"""The chat page: Gradio layout and event wiring only; every decision is in ChatService and the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import gradio as gr

from core.blocking_io import close_off_the_loop
from core.history import History
from core.request_facts import current_user
from model.engine import QueuePlace
from webui.admin_service import AdminService
from webui.admin_tab import build_admin_tab
from webui.chat_service import ChatService, ReplyUpdate
from webui.history_sidebar import (
    build_sidebar,
    escape_markdown,
    export_links,
    notice,
    shown_messages,
    wire_sidebar,
)
from webui.i18n import label, pick_locale, text
from webui.request_context import turn_context
from webui.script_api import register_script_api
from webui.tokens_service import TokensService
from webui.tokens_tab import build_tokens_tab

Messages = list[dict[str, Any]]
STOP_SAVE_SECONDS = 3.0  # how long the page waits for a stopped reply's final save


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
                    gr.Markdown(
                        f"{text('signed_in_as', locale)} **{escape_markdown(user.display)}**"
                    )
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
                    chat_tab(service, history, options, conversation, user.key, locale)
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
    locale: str,
) -> None:
    """The chat itself: sidebar of conversations, chat window, input and buttons."""
    # On a phone the history is a drawer behind this switch, read by CSS (webui.chat_layout_css).
    gr.Checkbox(label=label("history"), value=False, container=False, elem_id="history-toggle")
    with gr.Row():
        with gr.Column(scale=1, min_width=220, elem_id="history-drawer"):
            new = gr.Button(label("new_chat"), elem_id="new-chat")
            found = history.list_conversations(owner_key, limit=100)
            sidebar = build_sidebar(found, locale, datetime.now(UTC).date())
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

    def respond(
        message: str, conversation_id: str | None, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        ctx = turn_context(request)
        message = message or ""  # null from a script: an empty message, refused as such
        shown = _display(history, ctx.user.key, conversation_id, ctx.locale)
        links = export_links(options.export_base, conversation_id) if conversation_id else ""
        # The page as it is (values, not prop updates), with Stop in place at once.
        yield shown, message, conversation_id, links, *running()
        mine = on_screen.claim()
        updates = service.reply(ctx, conversation_id, message, report_queue=True)
        try:
            for update in updates:
                if mine is not None and not on_screen.holds(mine):
                    return  # New chat or Clear: this reply stops (saved as such), off the page
                turn, toast = present(update, message, ctx.locale)
                if toast is not None:
                    gr.Warning(toast)  # a toast: our words, apart from the assistant's
                if turn is None:  # refused: the chat and the typed message stay as they were
                    yield shown, message, conversation_id, links, *idle()
                    return
                conversation_id = update.conversation_id
                links = export_links(options.export_base, conversation_id)
                # Every update says "running" again: a refused second send (Enter while a reply
                # streams) sets the buttons idle, and the running reply takes them back.
                buttons = running() if update.status in ("queued", "streaming") else idle()
                yield shown + turn, "", conversation_id, links, *buttons
        finally:
            on_screen.release(mine)
            close_off_the_loop(updates)  # a stop saves the reply: SQL, not on Gradio's loop

    def show_stopped(query: str, conversation_id: str | None, request: gr.Request) -> list[Any]:
        # A stopped handler yields nothing more: the chat is shown as saved, notice included.
        ctx = turn_context(request)
        try:
            shown = _display_when_saved(history, ctx.user.key, conversation_id, ctx.locale)
        except LookupError:  # deleted meanwhile (in another tab)
            shown, conversation_id = [], None
        return [shown, *refresh(query, conversation_id, request)]

    def start_afresh() -> tuple[Any, ...]:
        on_screen.take_back(wait=STOP_SAVE_SECONDS)
        return [], "", None, "", "", *idle()

    def refresh_after_reply(query: str, current: str | None, request: gr.Request) -> list[Any]:
        # Idle again whatever ended the reply (a broken handler included), and the list updated.
        return [*refresh(query, current, request), *idle()]

    on_screen = ShownReply()
    refresh = wire_sidebar(sidebar, history, chatbot, conversation, options.export_base)
    listing = [sidebar.search, conversation]
    private = {"api_visibility": "private"}
    buttons = [ready, busy]
    events = []
    for trigger in (box.submit, send.click):
        event = trigger(
            respond,
            inputs=[box, conversation],
            outputs=[chatbot, box, conversation, sidebar.exports, *buttons],
            concurrency_limit=None,  # the engine's admission gate bounds the work
            **private,
        )
        event.then(refresh_after_reply, listing, [*sidebar.listing, *buttons], **private)
        events.append(event)
    # Stop cancels the handler; Gradio closes its generator, which stops the engine's thread.
    stop.click(idle, None, buttons, cancels=events, **private).then(
        show_stopped, listing, [chatbot, *sidebar.listing], **private
    )
    # New chat and the chat window's Clear both start a new conversation: the next message never
    # lands in the one left behind, and a reply still running stops at its next update. (Not
    # Gradio's cancels: those cancel whatever runs when they arrive, a message just sent included.)
    fresh = [chatbot, box, conversation, sidebar.title, sidebar.exports, *buttons]
    for trigger in (new.click, chatbot.clear):
        trigger(start_afresh, None, fresh, **private).then(
            refresh, listing, sidebar.listing, **private
        )


class ShownReply:
    """Which reply one tab's chat window shows while it runs: the first of the tab's replies to
    start holds it until it ends, or until New chat or Clear takes the window back for a new
    conversation (that reply then stops at its next update)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holder: object | None = None
        self._taken = False

    def claim(self) -> object | None:
        """A token for a reply that starts; None while another reply holds the window."""
        with self._changed:
            if self._holder is not None and not self._taken:
                return None
            self._holder, self._taken = object(), False
            return self._holder

    def holds(self, token: object) -> bool:
        with self._changed:
            return self._holder is token and not self._taken

    def release(self, token: object | None) -> None:
        """The reply of `token` has ended (None: it never held the window)."""
        with self._changed:
            if token is not None and self._holder is token:
                self._holder, self._taken = None, False
                self._changed.notify_all()

    def take_back(self, wait: float) -> None:
        """New chat or Clear: the reply holding the window loses it. Waits (at most `wait`
        seconds) until that reply has ended, so nothing it sends lands after the page is reset."""
        with self._changed:
            if self._holder is not None:
                self._taken = True
                self._changed.wait_for(lambda: self._holder is None, timeout=wait)


def running() -> tuple[dict[str, Any], dict[str, Any]]:
    """The buttons while a reply runs: Send greyed out, Stop shown."""
    return gr.update(visible="hidden"), gr.update(visible=True)


def idle() -> tuple[dict[str, Any], dict[str, Any]]:
    """The buttons with no reply running: Send usable, no Stop."""
    return gr.update(visible=True), gr.update(visible="hidden")


def present(update: ReplyUpdate, message: str, locale: str) -> tuple[Messages | None, str | None]:
    """What the page shows for one update: the turn's messages (None for a refused turn, which
    leaves the chat as it was) and a toast (None when there is nothing to say).

    A reply that ended short is followed by a notice of its own, in the reader's language: what
    went wrong, or that it was stopped; a refusal, which leaves no turn to attach it to, is a toast.
    Before its first words a reply is a notice too, with a spinner: its place in the engine's
    line while it waits, then that the assistant is writing.
    """
    if update.status in ("refused", "rate_limited"):
        return None, update.notice
    turn: Messages = [{"role": "user", "content": message.strip()}]
    if update.status == "queued" and update.queue is not None:
        turn.append(notice(waiting_words(update.queue, locale), pending=True))
    elif update.status == "streaming" and not update.reply:
        turn.append(notice(text("typing", locale), pending=True))
    elif update.reply or update.status == "streaming":
        turn.append({"role": "assistant", "content": update.reply})
    if update.status == "stopped":
        turn.append(notice(update.notice or text("notice_stopped", locale)))
    if update.status == "error":
        turn.append(notice(update.notice or text("engine_error", locale)))
    return turn, None


def waiting_words(place: QueuePlace, locale: str) -> str:
    """The waiting line: how many replies start first and about how long that takes."""
    seconds = max(1, round(place.expected_wait))
    if place.ahead == 0:
        return text("queue_next", locale, seconds=seconds)
    return text("queue_ahead", locale, ahead=place.ahead, seconds=seconds)


def _display_when_saved(
    history: History, owner_key: str, conversation_id: str | None, locale: str
) -> Messages:
    """The conversation once its last reply has its final status (a stop saves it just after the
    cancel reaches the handler), or as it is after STOP_SAVE_SECONDS."""
    deadline = time.monotonic() + STOP_SAVE_SECONDS
    while conversation_id is not None and time.monotonic() < deadline:
        messages = history.get_conversation(owner_key, conversation_id).messages
        if not messages or messages[-1].status != "streaming":
            break
        time.sleep(0.05)
    return _display(history, owner_key, conversation_id, locale)


def _display(
    history: History, owner_key: str, conversation_id: str | None, locale: str
) -> Messages:
    """The earlier turns as the sidebar shows them (unfinished replies followed by a notice)."""
    if conversation_id is None:
        return []
    return shown_messages(history.get_conversation(owner_key, conversation_id).messages, locale)
