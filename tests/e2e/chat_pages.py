"""What a person does on the chat app's pages, as page objects over the element ids of webui/.

Replies are watched from inside the page: a MutationObserver records every rendering of the newest
bot message and notices when Gradio's status tracker on the chatbot hides again (the event ended),
so a journey can assert on renderings that last only a few milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

from tests.e2e.harness import Idp, IdpAccount
from tests.e2e.idp_pages import Screenshot, sign_in

# Records renderings of the newest bot message until the chatbot's event has finished.
_WATCH_REPLY = """(box) => {
  const bots = () => box.querySelectorAll('[data-testid=bot]');
  const before = bots().length;
  const watch = {renderings: [], busy: false, done: false};
  const note = () => {
    const tracker = box.querySelector('[data-testid=status-tracker]');
    const idle = !tracker || tracker.classList.contains('hide');
    if (!idle) watch.busy = true;
    const all = bots();
    if (all.length > before && !watch.done) {
      const text = all[all.length - 1].textContent.trim();
      const last = watch.renderings[watch.renderings.length - 1];
      if (text && text !== last) watch.renderings.push(text);
    }
    if (watch.busy && idle) watch.done = true;
  };
  if (window.__replyObserver) window.__replyObserver.disconnect();
  window.__replyObserver = new MutationObserver(note);
  window.__replyObserver.observe(box, {subtree: true, childList: true, characterData: true,
                                       attributes: true, attributeFilter: ['class']});
  window.__reply = watch;
}"""

# The two sizes every journey looks at the page in.
DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
# Gradio's toasts (gr.Warning, gr.Info): a notice from the server that is not part of the chat.
TOASTS = "[data-testid=toast-body]"
POLL_SECONDS = 0.05
# A rendering unchanged this long is final (Markdown renders just after the event ends).
SETTLE_SECONDS = 0.4


@dataclass
class ReplyWatch:
    """One reply as the browser rendered it, from send until the event ended."""

    page: Page

    def renderings(self) -> list[str]:
        return self.page.evaluate("window.__reply.renderings")

    def wait_started(self, min_chars: int = 1, timeout: float = 20.0) -> None:
        """Wait until the reply has rendered at least `min_chars` characters."""
        poll(
            self.page,
            f"() => window.__reply.renderings.some((text) => text.length >= {int(min_chars)})",
            f"reply of {min_chars}+ characters",
            timeout,
        )

    def wait_done(self, timeout: float = 60.0) -> str:
        """Wait until the event ended and the newest bot message stopped changing; return its text."""
        poll(self.page, "() => window.__reply.done", "reply finished", timeout)
        return settled_text(self.page.locator("#chatbot [data-testid=bot]").last, timeout)

    def wait_refused(self, timeout: float = 30.0) -> str:
        """Wait until the event ended with a notice (a toast) and no reply; return the notice."""
        toast = self.page.locator(TOASTS).last
        expect(toast).to_be_visible(timeout=timeout * 1000)
        poll(self.page, "() => window.__reply.done", "refused send finished", timeout)
        assert self.renderings() == [], f"the notice was shown as a reply: {self.renderings()}"
        return toast.locator("[data-testid=toast-text]").inner_text().strip()


def poll(page: Page, predicate: str, what: str, timeout: float) -> None:
    """Evaluate `predicate` until true. (wait_for_function evals strings, which our CSP refuses.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s on {page.url}")
        time.sleep(POLL_SECONDS)


def settled_text(locator: Locator, timeout: float = 10.0) -> str:
    """The locator's text once it stayed the same for SETTLE_SECONDS."""
    deadline = time.monotonic() + timeout
    previous = locator.inner_text().strip()
    while True:
        time.sleep(SETTLE_SECONDS)
        current = locator.inner_text().strip()
        if current == previous:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"text still changing after {timeout} s: ...{current[-80:]!r}")
        previous = current


@dataclass
class ChatPage:
    """The chat page of one signed-in browser."""

    page: Page
    base_url: str

    @property
    def message_box(self) -> Locator:
        return self.page.locator("#message textarea")

    @property
    def bot_messages(self) -> Locator:
        return self.page.locator("#chatbot [data-testid=bot]")

    @property
    def user_messages(self) -> Locator:
        return self.page.locator("#chatbot [data-testid=user]")

    @property
    def conversations(self) -> Locator:
        return self.page.locator("#history-list label")

    def expect_loaded(self) -> ChatPage:
        """The browser shows the chat page of the app (after login or a reload)."""
        expect(self.page).to_have_url(self.base_url + "/")
        expect(self.message_box).to_be_visible()
        return self

    def reload(self) -> ChatPage:
        self.page.reload()
        return self.expect_loaded()

    def send(self, message: str) -> ReplyWatch:
        """Type a message and press Send; the returned watch follows the reply."""
        reply = self.watch_reply()
        self.message_box.fill(message)
        self.page.locator("#send").click()
        return reply

    def watch_reply(self) -> ReplyWatch:
        """Follow the next reply, however it is asked for (Send, Enter, retry, an edit)."""
        self.page.locator("#chatbot").evaluate(_WATCH_REPLY)
        return ReplyWatch(self.page)

    def stop(self) -> None:
        # force: while a reply streams the page re-renders every frame, and Playwright's wait for a
        # "stable" button would delay the click until the reply has ended.
        self.page.locator("#stop").click(force=True)

    def new_chat(self) -> None:
        # A message sent at once after this would go to the new conversation (the server orders
        # the clicks as they were sent); waiting for New chat's event to end keeps a watch on the
        # next reply from taking that event's end for the reply's.
        done = self.watch_reply()
        self.page.locator("#new-chat").click()
        poll(self.page, "() => window.__reply.done", "New chat finished", 10.0)
        expect(self.bot_messages).to_have_count(0)
        del done

    def conversation_titles(self) -> list[str]:
        return [title.strip() for title in self.conversations.all_inner_texts()]

    def expect_listed(self, title: str) -> None:
        expect(self.conversations.filter(has_text=title)).to_have_count(1)

    def expect_not_listed(self, title: str) -> None:
        expect(self.conversations.filter(has_text=title)).to_have_count(0)

    def open_conversation(self, title: str, turns: int) -> None:
        """Click a conversation in the sidebar and wait until its `turns` exchanges are shown."""
        self.conversations.filter(has_text=title).click()
        expect(self.page.locator("#history-title textarea, #history-title input")).to_have_value(
            title
        )
        expect(self.user_messages).to_have_count(turns)
        expect(self.bot_messages).to_have_count(turns)

    def rename_open_conversation(self, title: str) -> None:
        field = self.page.locator("#history-title textarea, #history-title input")
        field.fill(title)
        self.page.locator("#history-rename").click()
        self.expect_listed(title)

    def delete_open_conversation(self) -> None:
        self.page.locator("#history-delete").click()
        expect(self.bot_messages).to_have_count(0)

    def tab(self, name: str) -> Locator:
        return self.page.get_by_role("tab", name=name, exact=True)


def sign_in_to_chat(
    page: Page,
    idp: Idp,
    base_url: str,
    account: IdpAccount,
    screenshot: Screenshot | None = None,
) -> ChatPage:
    """Open the chat, get sent to the IdP's own login form, sign in, and land on the chat page."""
    page.goto(base_url + "/")
    sign_in(page, idp, account, screenshot)
    return ChatPage(page, base_url).expect_loaded()


def expect_idle(page: Page) -> None:
    """No reply runs: Send usable, no Stop."""
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#stop")).to_be_hidden()


def expect_running(page: Page) -> None:
    """A reply runs: Send greyed out, Stop shown."""
    expect(page.locator("#send")).to_be_hidden()
    expect(page.locator("#send-busy")).to_be_visible()
    expect(page.locator("#send-busy")).to_be_disabled()
    expect(page.locator("#stop")).to_be_visible()
