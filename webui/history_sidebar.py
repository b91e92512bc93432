"""The conversation sidebar: lists by the reader's day, search as you type, open, rename, delete
(with an Undo line for the store's undo window), export links. Ownership is checked by the store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import gradio as gr

from core.history import UNDO_WINDOW, History
from core.request_facts import current_user
from webui.i18n import label, request_locale, text
from webui.reader_time_zone import reader_zone

log = logging.getLogger("chat.sidebar")
Messages = list[dict[str, Any]]
# The sidebar's sections, newest first: by the day (in the reader's time zone) a conversation was
# last active.
GROUPS = ("today", "yesterday", "earlier")
# A reply that did not finish is followed by our notice saying so (an i18n key per status).
_NOTICES = {
    "stopped": "notice_stopped",
    "interrupted": "notice_interrupted",
    "error": "notice_error",
}
# What a turn may save as the reason a reply ended short (chat_service): shown in its place.
_SAVED_NOTICES = frozenset({"restarting", "busy", "engine_error"})


@dataclass
class Sidebar:
    """The sidebar's components, for the chat page to wire to its own events."""

    groups: tuple[gr.Radio, ...]  # one list per GROUPS entry
    empty: gr.Markdown  # "nothing found" / "no conversations yet"
    search: gr.Textbox
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    exports: gr.Markdown
    # The Undo line after a delete. Shown and hidden by the column's visibility only; its timer
    # exists in the page only while the line is shown (visible=False takes it out), so it ticks
    # once, when the undo window is over, and then hides the line.
    undo_line: gr.Column
    undo_words: gr.Markdown
    undo: gr.Button
    undo_timer: gr.Timer
    deleted: gr.State  # the id the Undo line would restore (server-side, re-checked by the store)

    @property
    def listing(self) -> list[Any]:
        """What a refresh of the list updates."""
        return [*self.groups, self.empty]


def build_sidebar(
    initial: list[Any],
    locale: str,
    now: datetime,
    undo_window: timedelta = UNDO_WINDOW,
    zone: tzinfo = UTC,
) -> Sidebar:
    """The sidebar for one page load, listing `initial` (the user's newest conversations) by the
    reader's days (in `zone`); an Undo line after a delete stays for `undo_window`."""
    search = gr.Textbox(
        label=label("search_placeholder"),  # for screen readers; the placeholder shows
        placeholder=label("search_placeholder"),
        show_label=False,
        elem_id="history-search",
        max_lines=1,
    )
    listed = listing_updates(initial, "", None, locale, now.astimezone(zone).date(), zone)
    with gr.Column(elem_id="history-list"):
        groups = tuple(
            gr.Radio(
                choices=update["choices"],
                label=label(key),
                elem_id=f"history-{key}",
                interactive=True,
                visible=update["visible"],
            )
            for key, update in zip(GROUPS, listed, strict=False)
        )
        empty = gr.Markdown(
            listed[-1]["value"], elem_id="history-empty", visible=listed[-1]["visible"]
        )
    with gr.Row():
        title = gr.Textbox(
            label=label("rename_placeholder"),  # for screen readers; the placeholder shows
            placeholder=label("rename_placeholder"),
            show_label=False,
            elem_id="history-title",
        )
    with gr.Row():
        rename = gr.Button(label("rename"), size="sm", elem_id="history-rename")
        delete = gr.Button(label("delete"), size="sm", variant="stop", elem_id="history-delete")
    # scale=0: in the phone's drawer the line keeps its own height rather than taking the rest.
    with gr.Column(visible=False, variant="panel", scale=0, elem_id="history-undo") as undo_line:
        undo_words = gr.Markdown(elem_id="history-undo-words")
        undo = gr.Button(label("undo"), size="sm", elem_id="history-undo-button")
        undo_timer = gr.Timer(undo_window.total_seconds())
    exports = gr.Markdown(elem_id="history-export")
    deleted = gr.State(None)
    return Sidebar(
        groups, empty, search, title, rename, delete, exports,
        undo_line, undo_words, undo, undo_timer, deleted,
    )  # fmt: skip


def group_by_day(
    conversations: Iterable[Any], today: date, zone: tzinfo = UTC
) -> list[list[tuple[str, str]]]:
    """(label, id) choices per GROUPS entry, each newest first; an earlier one shows its date.
    Days are the reader's: `today` and each conversation's last activity in `zone`."""
    grouped: list[list[tuple[str, str]]] = [[] for _ in GROUPS]
    for conversation in conversations:
        day = _utc(conversation.updated_at).astimezone(zone).date()
        if day >= today:
            grouped[0].append((conversation.title, conversation.id))
        elif day == today - timedelta(days=1):
            grouped[1].append((conversation.title, conversation.id))
        else:
            grouped[2].append((f"{conversation.title} · {day.isoformat()}", conversation.id))
    return grouped


def listing_updates(
    found: list[Any],
    query: str,
    current: str | None,
    locale: str,
    today: date,
    zone: tzinfo = UTC,
) -> list[dict[str, Any]]:
    """Updates for the group lists and the empty-list message: empty groups are hidden, and the
    open conversation stays selected in its group."""
    updates = [
        gr.update(
            choices=choices,
            value=current if current in {cid for _, cid in choices} else None,
            visible=bool(choices),
        )
        for choices in group_by_day(found, today, zone)
    ]
    if found:
        message = ""
    elif query.strip():
        message = text("no_matches", locale, query=escape_markdown(query.strip()[:80]))
    else:
        message = text("no_conversations", locale)
    updates.append(gr.update(value=message, visible=bool(message)))
    return updates


def wire_sidebar(
    sidebar: Sidebar,
    history: History,
    chatbot: gr.Chatbot,
    conversation: gr.State,
    export_base: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[..., Any]:
    """Attach the sidebar's events; returns the refresh handler, which the page runs after each reply."""

    def refresh(query: str, current: str | None, request: gr.Request) -> list[dict[str, Any]]:
        user = current_user(request)
        query = query or ""
        found = history.list_conversations(user.key, search=query or None, limit=100, offset=0)
        zone = reader_zone(request)
        today = clock().astimezone(zone).date()
        return listing_updates(found, query, current, _locale(request), today, zone)

    def open_in(group: int) -> Callable[..., tuple[Any, ...]]:
        def open_conversation(conversation_id: str | None, request: gr.Request) -> tuple[Any, ...]:
            # The other groups drop their selection: one conversation is open at a time.
            others = tuple(gr.update() if i == group else None for i in range(len(GROUPS)))
            if not conversation_id:
                return [], None, "", "", *others
            user = current_user(request)
            try:
                found = history.get_conversation(user.key, conversation_id)
            except LookupError:
                gr.Warning(text("not_found", _locale(request)))
                return [], None, "", "", *others
            shown = shown_messages(found.messages, _locale(request))
            return shown, found.id, found.title, export_links(export_base, found.id), *others

        return open_conversation

    def rename(conversation_id: str | None, title: str, request: gr.Request) -> None:
        user = current_user(request)
        if conversation_id and title.strip():
            try:
                history.rename(user.key, conversation_id, title.strip()[:200])
            except LookupError:
                gr.Warning(text("not_found", _locale(request)))

    def delete(conversation_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        # The line is hidden first and shown by offer_undo: shown anew, its timer starts anew.
        user = current_user(request)
        words, deleted = gr.skip(), None
        if conversation_id:
            try:
                gone = history.delete(user.key, conversation_id)
            except LookupError:
                gr.Warning(text("not_found", _locale(request)))
            else:
                title = escape_markdown(gone.title)
                words, deleted = text("deleted_line", _locale(request), title=title), gone.id
        return [], None, "", "", gr.update(visible=False), words, deleted

    def offer_undo(
        query: str, current: str | None, deleted: str | None, request: gr.Request
    ) -> list[Any]:
        shown = gr.update(visible=True) if deleted else gr.skip()
        return [*refresh(query, current, request), shown]

    def undo(deleted: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Restore the conversation just deleted and open it again."""
        user = current_user(request)
        hidden, unchanged = gr.update(visible=False), (gr.skip(),) * 4
        if not deleted:  # the line was gone already: nothing to undo
            return *unchanged, hidden, None
        try:
            history.restore(user.key, deleted)
            found = history.get_conversation(user.key, deleted)
        except LookupError:  # the undo window is over (the store has audited the attempt)
            gr.Warning(text("undo_too_late", _locale(request)))
            return *unchanged, hidden, None
        shown = shown_messages(found.messages, _locale(request))
        links = export_links(export_base, found.id)
        return shown, found.id, found.title, links, hidden, None

    def undo_over() -> tuple[Any, ...]:
        return gr.update(visible=False), None

    private = {"api_visibility": "private"}
    listing = [sidebar.search, conversation]
    # As the person types; always_last: one search runs at a time, then the latest text is used.
    sidebar.search.change(refresh, listing, sidebar.listing, trigger_mode="always_last", **private)
    for index, group in enumerate(sidebar.groups):
        group.input(
            open_in(index),
            group,
            [chatbot, conversation, sidebar.title, sidebar.exports, *sidebar.groups],
            **private,
        )
    sidebar.rename.click(rename, [conversation, sidebar.title], None, **private).then(
        refresh, listing, sidebar.listing, **private
    )
    opened = [chatbot, conversation, sidebar.title, sidebar.exports]
    undo_line = [sidebar.undo_line, sidebar.deleted]
    offered = [*opened, sidebar.undo_line, sidebar.undo_words, sidebar.deleted]
    sidebar.delete.click(delete, conversation, offered, **private).then(
        offer_undo, [*listing, sidebar.deleted], [*sidebar.listing, sidebar.undo_line], **private
    )
    sidebar.undo.click(undo, sidebar.deleted, [*opened, *undo_line], **private).then(
        refresh, listing, sidebar.listing, **private
    )
    sidebar.undo_timer.tick(undo_over, None, undo_line, **private)
    return refresh


def notice(words: str, pending: bool = False) -> dict[str, Any]:
    """Our own words in the chat (a reply stopped, failed, cut short, or still to come): a message
    of its own, shown as a titled box, never part of the assistant's reply; `pending` adds a
    spinner (a reply waiting or about to be written)."""
    status = "pending" if pending else "done"
    return {"role": "assistant", "content": "", "metadata": {"title": words, "status": status}}


def shown_messages(messages: Iterable[Any], locale: str) -> Messages:
    """Stored messages as the chatbot shows them: a reply that did not finish is followed by a
    notice that says so (an empty one is only the notice)."""
    shown: Messages = []
    for message in messages:
        key = _NOTICES.get(message.status) if message.role == "assistant" else None
        saved = getattr(message, "notice", None)
        if key is not None and saved in _SAVED_NOTICES:
            key = saved  # the words the reader saw when it ended, in today's language
        if message.content or key is None:
            shown.append({"role": message.role, "content": message.content})
        if key is not None:
            shown.append(notice(text(key, locale)))
    return shown


def _locale(request: gr.Request) -> str:
    return request_locale(request)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time we store is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def escape_markdown(value: str) -> str:
    """What the person typed, shown literally in a Markdown message."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|~" else c for c in value)


def export_links(base: str, conversation_id: str | None) -> str:
    """Markdown links to our own export routes (ids are hex, so nothing needs escaping); none
    for no conversation."""
    if not conversation_id:
        return ""
    cid = "".join(c for c in conversation_id if c.isalnum())
    return f"⤓ [Markdown]({base}/export/{cid}.md) · [JSON]({base}/export/{cid}.json)"
