"""What the chat window shows: a turn's updates as messages, a conversation as saved, with and
without its last turn (for retry and edit), and the words of the waiting line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.history import History
from model.engine import QueuePlace
from webui.chat_service import ReplyUpdate
from webui.history_sidebar import notice, shown_messages
from webui.i18n import text

Messages = list[dict[str, Any]]
STOP_SAVE_SECONDS = 3.0  # how long the page waits for a stopped reply's final save


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


def edited_text(value: Any) -> str:
    """The words of an edited message, whichever shape the browser sent them in."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(edited_text(part) for part in value)
    if isinstance(value, dict):
        return str(value.get("text") or value.get("content") or "")
    return ""


@dataclass(frozen=True)
class ShownConversation:
    """A conversation as the chat window shows it, with and without its last turn."""

    messages: Messages
    without_last: Messages
    last_question: str
    last_question_index: int | None  # the chat window's index of the last question, if any

    @classmethod
    def read(
        cls, history: History, owner_key: str, conversation_id: str | None, locale: str
    ) -> ShownConversation:
        try:
            stored = (
                history.get_conversation(owner_key, conversation_id).messages
                if conversation_id
                else ()
            )
        except LookupError:  # deleted meanwhile (in another tab): the turn is refused as such
            stored = ()
        messages = shown_messages(stored, locale)
        if len(stored) < 2 or stored[-2].role != "user":
            return cls(messages, messages, "", None)
        without_last = shown_messages(stored[:-2], locale)
        # The question follows the earlier turns; the reply and its notices come after it.
        return cls(messages, without_last, stored[-2].content, len(without_last))


def display_when_saved(
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
