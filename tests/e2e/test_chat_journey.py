"""Journey 1: a staff member signs in through the IdP, chats, stops a reply, and manages history.

The reply is seen growing token by token, Stop ends it (and it stays stopped, saved as such),
the conversation survives a reload and can be continued, and another one is renamed and deleted.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_messages import NOTICES, REPLIES
from tests.e2e.chat_pages import settled_text, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot

FIRST = "Journey one: what is on the agenda today?"
SECOND = "Journey one: a long answer please"
THIRD = "Journey one: and one more thing"
OTHER = "Journey one: a different topic"
RENAMED = "Journey one: renamed topic"
STILL_SECONDS = 1.0  # how long a stopped reply must stay unchanged


def letters(rendered: str) -> str:
    """Letters and digits only: Markdown renders a prefix and the whole reply with different spacing
    and markup (an unclosed `**` shows until it closes)."""
    return "".join(c for c in rendered if c.isalnum())


def saved_conversation(app: ChatApp, title: str):
    """The staff user's conversation with `title`, as the server stored it."""
    found = app.services.history.list_conversations(app.user_key(STAFF), limit=100)
    matching = [c for c in found if c.title == title]
    assert len(matching) == 1, f"conversations titled {title!r}: {[c.title for c in found]}"
    return app.services.history.get_conversation(app.user_key(STAFF), matching[0].id)


def test_staff_chats_stops_reloads_continues_renames_and_deletes(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF, screenshot)
    expect(page.locator("#user-bar")).to_contain_text("Alice Staff")
    screenshot(page, "chat-signed-in")

    # The reply streams: the browser renders it several times, growing, before it is complete.
    reply = chat.send(FIRST)
    final = reply.wait_done()
    partials = [r for r in reply.renderings() if r != final]
    assert len(set(partials)) >= 2, f"saw {len(partials)} partial renderings"
    assert all(0 < len(p) < len(final) for p in partials[:2])
    assert len(partials[-1]) > len(partials[0]), "the rendering did not grow"
    chat.expect_listed(FIRST)
    screenshot(page, "chat-reply-complete")

    # Stop during the next (equally long) reply: it ends early, stops growing, and is followed by
    # a notice of its own.
    reply = chat.send(SECOND)
    reply.wait_started(min_chars=30)
    chat.stop()
    reply.wait_done()
    expect(page.locator(NOTICES)).to_have_text(["Reply stopped."])
    stopped = settled_text(page.locator(REPLIES).last)
    page.wait_for_timeout(STILL_SECONDS * 1000)
    assert settled_text(page.locator(REPLIES).last) == stopped, "the reply kept growing after Stop"
    screenshot(page, "chat-reply-stopped")
    saved = saved_conversation(chat_app, FIRST).messages
    assert [(m.role, m.status) for m in saved] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "stopped"),
    ]
    assert len(saved[3].content) < len(saved[1].content), "the stopped reply ran to its end"

    # After a reload the conversation is in the sidebar, with the stopped reply, and continues.
    chat.reload()
    chat.expect_listed(FIRST)
    chat.conversations.filter(has_text=FIRST).click()
    expect(chat.user_messages).to_have_count(2)
    expect(page.locator(REPLIES)).to_have_count(2)
    expect(page.locator(NOTICES)).to_have_text(["Reply stopped."])
    reopened = settled_text(page.locator(REPLIES).last)
    assert letters(reopened).startswith(letters(stopped)[:12]), (stopped, reopened)
    screenshot(page, "chat-reopened")
    reply = chat.send(THIRD)
    reply.wait_done()
    expect(chat.user_messages).to_have_count(3)
    expect(chat.user_messages.first).to_contain_text(FIRST)
    assert len(saved_conversation(chat_app, FIRST).messages) == 6

    # Another conversation: renamed, then deleted; the first one stays.
    chat.new_chat()
    chat.send(OTHER).wait_done()
    chat.expect_listed(OTHER)
    chat.rename_open_conversation(RENAMED)
    chat.expect_not_listed(OTHER)
    screenshot(page, "chat-renamed")
    chat.delete_open_conversation()
    chat.expect_not_listed(RENAMED)
    chat.reload()
    chat.expect_listed(FIRST)
    chat.expect_not_listed(RENAMED)
    titles = [
        c.title for c in chat_app.services.history.list_conversations(chat_app.user_key(STAFF))
    ]
    assert RENAMED not in titles and OTHER not in titles
