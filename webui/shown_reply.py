"""Which reply one tab's chat window shows while it runs, ordered by when each click was sent."""

from __future__ import annotations

import threading

_TAKEN_BACK = object()  # handed to a reply sent before New chat was pressed: it never shows


class ShownReply:
    """The first of a tab's replies to start holds the window until it ends, or until New chat or
    Clear takes the window back for a new conversation; that reply then stops at its next update.

    Clicks are ordered by when their requests reached the server (`sent`, time.monotonic()), not by
    when their handlers run: New chat takes back only replies sent before it, and a message sent
    after New chat goes to a new conversation, however the two handlers interleave.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holder: object | None = None
        self._holder_sent = 0.0
        self._taken = False
        self._reset_at = float("-inf")  # the latest New chat or Clear
        self._resetting: set[float] = set()  # New chats whose reset has not reached the tab yet

    def claim(self, sent: float, wait: float) -> object | None:
        """A token for a reply that starts; None while another reply holds the window. A reply
        New chat took back, still ending, is waited for (at most `wait` seconds): the new one
        would otherwise be refused as a second reply at a time. A reply sent before the latest
        New chat gets a token that never holds the window."""
        with self._changed:
            if sent < self._reset_at:
                return _TAKEN_BACK
            if self._holder is not None and self._taken:
                self._changed.wait_for(lambda: self._holder is None or not self._taken, wait)
            if self._holder is not None and not self._taken:
                return None
            self._holder, self._holder_sent, self._taken = object(), sent, False
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

    def take_back(self, sent: float, wait: float) -> bool:
        """New chat or Clear, sent at `sent`: a reply sent before it loses the window. Waits (at
        most `wait` seconds) until that reply has ended, so nothing it sends lands after the page
        is reset. True if a message sent after this New chat holds the window by then: the page
        is that reply's, and must be left alone. Until reset_done(sent), a message sent after
        this one starts a new conversation whatever the tab's state still says."""
        with self._changed:
            self._reset_at = max(self._reset_at, sent)
            self._resetting.add(sent)
            holder = self._holder
            if holder is not None and self._holder_sent < sent:
                self._taken = True
                self._changed.wait_for(lambda: self._holder is not holder, timeout=wait)
            return self._holder is not None and not self._taken and self._holder_sent > sent

    def reset_done(self) -> None:
        """The tab shows what the New chats so far left it (their outputs are applied)."""
        with self._changed:
            self._resetting.clear()

    def starts_afresh(self, sent: float) -> bool:
        """A New chat sent before `sent` is still resetting the tab: the conversation the tab's
        state names is the one left behind."""
        with self._changed:
            return any(reset < sent for reset in self._resetting)

    @staticmethod
    def shown(token: object | None) -> bool:
        """False for a reply New chat took back before it started: it must not touch the page."""
        return token is not _TAKEN_BACK
