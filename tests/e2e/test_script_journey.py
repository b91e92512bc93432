"""Journey 6: a staff member makes a personal token in the browser, a script streams a reply with it
through gradio_client while the same person chats in the browser, and the audit trail shows both."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from gradio_client import Client
from playwright.sync_api import Page, expect

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import ChatPage, sign_in_to_chat
from tests.e2e.harness import STAFF, Idp
from tests.e2e.idp_pages import Screenshot


def create_token(chat: ChatPage, name: str) -> str:
    """Use the API tokens tab as a person would; return the secret it shows once."""
    chat.tab("API tokens").click()
    chat.page.locator("#token-name input, #token-name textarea").fill(name)
    chat.page.locator("#token-create").click()
    expect(chat.page.locator("#token-notice")).to_contain_text(name)
    secret = chat.page.locator("#token-secret input, #token-secret textarea").input_value()
    assert secret, "the new token is shown once, on creation"
    expect(chat.page.locator("#token-table")).to_contain_text(name)
    return secret


def stream_with_token(url: str, secret: str, message: str, replies: list[dict]) -> None:
    """What a user's script does: gradio_client with the token as a bearer credential."""
    client = Client(url, headers={"Authorization": f"Bearer {secret}"}, verbose=False)
    try:
        for update in client.submit(message, None, api_name="/chat"):
            replies.append(update)
    finally:
        client.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def test_script_with_personal_token_streams_beside_the_browser_and_both_are_audited(
    page: Page, idp: Idp, chat_app: ChatApp, screenshot: Screenshot
) -> None:
    marker = uuid.uuid4().hex[:8]
    chat = sign_in_to_chat(page, idp, chat_app.url, STAFF)
    token_name = f"nightly report {marker}"
    secret = create_token(chat, token_name)
    screenshot(page, "token-created")
    chat.tab("Chat").click()

    script_prompt = f"script asks {marker}"
    updates: list[dict] = []
    script = threading.Thread(
        target=stream_with_token, args=(chat_app.url, secret, script_prompt, updates)
    )
    script.start()
    wait_for(lambda: len(updates) >= 2, "the script's first partial replies")

    # One reply at a time per person, whichever way they come in: the browser is told to wait, in a
    # notice beside the chat; the message stays in the box to send again.
    too_early = f"browser asks too early {marker}"
    early = chat.send(too_early)
    assert "still being generated" in early.wait_refused()
    expect(chat.bot_messages).to_have_count(0)
    expect(chat.message_box).to_have_value(too_early)
    script.join(timeout=60)
    assert not script.is_alive(), "the script's stream did not finish"

    # The script saw its reply grow, then complete, in a conversation of the same person.
    partials = [u["reply"] for u in updates if u["status"] == "streaming"]
    assert len(set(partials)) >= 2, updates[:3]
    assert updates[-1]["status"] == "complete", updates[-1]
    assert updates[-1]["reply"].startswith(partials[0])

    # The browser, still signed in, chats as soon as the script's reply is done.
    chat.new_chat()
    browser_prompt = f"browser asks {marker}"
    reply = chat.send(browser_prompt)
    assert reply.wait_done()
    assert len(reply.renderings()) >= 2
    screenshot(page, "browser-reply-after-script")

    # Both turns are in the same person's history: the browser shows the script's conversation.
    chat.reload()
    chat.expect_listed(script_prompt[:40])
    chat.expect_listed(browser_prompt[:40])

    # The audit trail holds both requests under the same person, and tells the script's apart.
    records = chat_app.services.audit_log.query(actor=chat_app.user_key(STAFF), text=marker).records
    requests = {r.details_dict["prompt_excerpt"]: r for r in records if r.type == "chat.request"}
    assert set(requests) == {script_prompt, browser_prompt}, list(requests)
    assert requests[script_prompt].details_dict["via_token"] == token_name
    assert requests[browser_prompt].details_dict["via_token"] is None
    assert requests[script_prompt].outcome == requests[browser_prompt].outcome == "started"
    # How each turn ended is its chat.reply, on the same conversation.
    replies = chat_app.services.audit_log.query(
        actor=chat_app.user_key(STAFF), type="chat.reply"
    ).records
    ended = {r.target: r.outcome for r in replies}
    assert ended[requests[script_prompt].target] == "complete"
    assert ended[requests[browser_prompt].target] == "complete"
    created = chat_app.services.audit_log.query(
        actor=chat_app.user_key(STAFF), type="token.created", text=marker
    ).records
    assert len(created) == 1
    assert secret not in created[0].details  # the secret itself never reaches the trail
