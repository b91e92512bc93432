"""Which reply a tab's chat window shows: New chat takes back replies sent before it, only those,
and a message sent after it goes to a new conversation whichever handler runs first."""

from __future__ import annotations

import threading
import time

from webui.shown_reply import ShownReply


def end_when_taken(window: ShownReply, token: object) -> threading.Event:
    """A running reply: at its next update it finds it lost the window, and ends."""
    ended = threading.Event()

    def running_reply() -> None:
        while window.holds(token):
            time.sleep(0.01)
        window.release(token)
        ended.set()

    threading.Thread(target=running_reply, daemon=True).start()
    return ended


def test_new_chat_takes_the_window_back_from_a_running_reply_and_waits_for_it_to_end():
    window = ShownReply()
    first = window.claim(sent=1.0, wait=0)
    assert first is not None and window.holds(first)
    assert window.claim(sent=1.5, wait=0) is None  # a second send while one runs: no window

    ended = end_when_taken(window, first)
    assert window.take_back(sent=2.0, wait=5) is False  # the page is New chat's to reset
    assert ended.is_set()  # take_back returned only once the reply had ended
    window.reset_done()
    second = window.claim(sent=3.0, wait=0)
    assert second is not None and window.holds(second) and not window.holds(first)
    window.release(first)  # a late release of the old reply leaves the new one alone
    assert window.holds(second)
    window.take_back(sent=4.0, wait=0.2)  # a reply that never ends does not hold the page up
    assert not window.holds(second)


def test_a_message_sent_after_new_chat_but_handled_first_keeps_the_window_and_the_page():
    window = ShownReply()
    after = window.claim(sent=2.0, wait=0)
    assert window.take_back(sent=1.0, wait=5) is True  # New chat must leave the page alone
    assert after is not None and window.holds(after) and window.shown(after)


def test_a_message_sent_after_new_chat_waits_for_the_reply_it_took_back_then_starts_afresh():
    window = ShownReply()
    old = window.claim(sent=1.0, wait=0)
    release_later = threading.Event()

    def slow_ending() -> None:  # the old reply takes a moment to save after losing the window
        release_later.wait(5)
        window.release(old)

    threading.Thread(target=slow_ending, daemon=True).start()
    resetting = threading.Thread(target=lambda: window.take_back(sent=2.0, wait=5))
    resetting.start()
    while window.holds(old):
        time.sleep(0.01)
    assert window.starts_afresh(3.0)  # the tab's state still names the old conversation
    claimed: list[object | None] = []
    claiming = threading.Thread(target=lambda: claimed.append(window.claim(sent=3.0, wait=5)))
    claiming.start()
    assert claimed == []  # waits for the old reply to end rather than be refused beside it
    release_later.set()
    claiming.join(5)
    resetting.join(5)
    [token] = claimed
    assert token is not None and window.holds(token)
    window.reset_done()
    assert not window.starts_afresh(4.0)


def test_a_message_sent_before_new_chat_but_handled_after_it_never_shows():
    window = ShownReply()
    window.take_back(sent=2.0, wait=5)
    late = window.claim(sent=1.0, wait=0)
    assert not window.shown(late) and not window.holds(late)
    window.release(late)
    assert not window.starts_afresh(1.5)  # only messages sent after New chat start afresh
    fresh = window.claim(sent=3.0, wait=0)  # the next message after New chat is shown as usual
    assert fresh is not None and window.shown(fresh) and window.holds(fresh)
