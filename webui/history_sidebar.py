"""The conversation sidebar: list, search, open, rename, delete, export links. Ownership is checked by the store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.history import History
from core.request_facts import current_user
from webui.i18n import label, pick_locale, text

log = logging.getLogger("chat.sidebar")
Messages = list[dict[str, str]]
# Replies that did not finish carry a mark (the i18n key is the status), as the live page shows
# a stopped one.
_MARKED = frozenset({"stopped", "interrupted"})


@dataclass
class Sidebar:
    """The sidebar's components, for the chat page to wire to its own events."""

    conversations: gr.Radio
    search: gr.Textbox
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    exports: gr.Markdown


def build_sidebar(initial: list[Any]) -> Sidebar:
    """The sidebar for one page load, listing `initial` (the user's newest conversations)."""
    search = gr.Textbox(
        placeholder=label("search_placeholder"), show_label=False, elem_id="history-search"
    )
    conversations = gr.Radio(
        choices=[(c.title, c.id) for c in initial],
        label=label("history"),
        elem_id="history-list",
        interactive=True,
    )
    with gr.Row():
        title = gr.Textbox(
            placeholder=label("rename_placeholder"), show_label=False, elem_id="history-title"
        )
    with gr.Row():
        rename = gr.Button(label("rename"), size="sm", elem_id="history-rename")
        delete = gr.Button(label("delete"), size="sm", variant="stop", elem_id="history-delete")
    exports = gr.Markdown(elem_id="history-export")
    return Sidebar(conversations, search, title, rename, delete, exports)


def wire_sidebar(
    sidebar: Sidebar,
    history: History,
    chatbot: gr.Chatbot,
    conversation: gr.State,
    export_base: str,
) -> Callable[..., Any]:
    """Attach the sidebar's events; returns the refresh handler, which the page runs after each reply."""

    def refresh(query: str, current: str | None, request: gr.Request) -> Any:
        user = current_user(request)
        found = history.list_conversations(user.key, search=query or None, limit=100, offset=0)
        choices = [(c.title, c.id) for c in found]
        ids = {c.id for c in found}
        return gr.update(choices=choices, value=current if current in ids else None)

    def open_conversation(
        conversation_id: str | None, request: gr.Request
    ) -> tuple[Messages, str | None, str, str]:
        if not conversation_id:
            return [], None, "", ""
        user = current_user(request)
        try:
            found = history.get_conversation(user.key, conversation_id)
        except LookupError:
            gr.Warning(label("not_found"))
            return [], None, "", ""
        headers = getattr(request, "headers", None) or {}
        locale = pick_locale(headers.get("accept-language"))
        shown = shown_messages(found.messages, locale)
        return shown, found.id, found.title, export_links(export_base, found.id)

    def rename(conversation_id: str | None, title: str, request: gr.Request) -> None:
        user = current_user(request)
        if conversation_id and title.strip():
            try:
                history.rename(user.key, conversation_id, title.strip()[:200])
            except LookupError:
                gr.Warning(label("not_found"))

    def delete(conversation_id: str | None, request: gr.Request) -> tuple[Messages, None, str, str]:
        user = current_user(request)
        if conversation_id:
            try:
                history.delete(user.key, conversation_id)
            except LookupError:
                gr.Warning(label("not_found"))
        return [], None, "", ""

    private = {"api_visibility": "private"}
    listing = [sidebar.search, conversation]
    sidebar.search.submit(refresh, listing, sidebar.conversations, **private)
    sidebar.conversations.input(
        open_conversation,
        sidebar.conversations,
        [chatbot, conversation, sidebar.title, sidebar.exports],
        **private,
    )
    sidebar.rename.click(rename, [conversation, sidebar.title], None, **private).then(
        refresh, listing, sidebar.conversations, **private
    )
    sidebar.delete.click(
        delete, conversation, [chatbot, conversation, sidebar.title, sidebar.exports], **private
    ).then(refresh, listing, sidebar.conversations, **private)
    return refresh


def shown_messages(messages: Iterable[Any], locale: str) -> Messages:
    """Stored messages as the chatbot shows them: a reply that did not finish says so."""
    shown = []
    for message in messages:
        content = message.content
        if message.role == "assistant" and message.status in _MARKED:
            mark = text(message.status, locale)
            content = f"{content}\n\n{mark}" if content else mark
        shown.append({"role": message.role, "content": content})
    return shown


def export_links(base: str, conversation_id: str) -> str:
    """Markdown links to our own export routes (ids are hex, so nothing needs escaping)."""
    cid = "".join(c for c in conversation_id if c.isalnum())
    return f"⤓ [Markdown]({base}/export/{cid}.md) · [JSON]({base}/export/{cid}.json)"
