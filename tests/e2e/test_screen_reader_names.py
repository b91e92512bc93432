"""What a screen reader announces for the page's controls, in English and in Chinese: every text
box, number, list, switch and button has a name, in the page's language, never Gradio's generic
"Textbox" or "Number"; the chat window and its messages are named in the page's language too."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import ChatPage, sign_in_to_chat
from tests.e2e.harness import ADMIN, Idp

# The controls, and the chat window itself (a live "log" region the reader follows).
CONTROLS = ("textbox", "spinbutton", "combobox", "checkbox", "radio", "button", "searchbox", "log")
GENERIC = {"textbox", "number", "dropdown", "checkbox", "radio", "checkbox group", "button"}
# Proper names that stay as they are in Chinese: the formats and the language's own name.
KEPT = {"Markdown", "JSON", "English", "API", "CIDR", "UTC"}
TABS = {"en-US": ("Chat", "API tokens", "Audit"), "zh-CN": ("对话", "API 令牌", "审计")}


def control_names(page: Page) -> list[tuple[str, str | None]]:
    """(role, accessible name) of each control shown, from the page's accessibility tree."""
    found = []
    for line in page.locator("body").aria_snapshot().splitlines():
        match = re.match(r'\s*- (\w+)(?: "((?:[^"\\]|\\.)*)")?', line)
        if match and match.group(1) in CONTROLS:
            found.append((match.group(1), match.group(2)))
    return found


def english_words(name: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z]{3,}", name) if w not in KEPT]


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_every_control_is_named_in_the_pages_language(
    open_browser: Callable[..., Page], idp: Idp, chat_app: ChatApp, locale: str
) -> None:
    page = open_browser(locale=locale, viewport={"width": 1366, "height": 800})
    chat: ChatPage = sign_in_to_chat(page, idp, chat_app.url, ADMIN)
    chat.send("Hello").wait_done()
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for tab in TABS[locale]:
        chat.tab(tab).click()
        page.wait_for_timeout(500)  # the tab's contents render
        seen[tab] = control_names(page)
    problems = [
        (tab, role, name)
        for tab, controls in seen.items()
        for role, name in controls
        if not name
        or name.strip().lower() in GENERIC
        # (Radio buttons in the history are conversation titles: the person's own words.)
        or (locale == "zh-CN" and role != "radio" and english_words(name))
    ]
    assert seen[TABS[locale][0]], "no controls found on the chat tab"
    chat.tab(TABS[locale][0]).click()
    [reply] = page.locator("#chatbot [data-testid=bot]").all()
    expected = {"en-US": "bot's message: ", "zh-CN": "助手的回复："}[locale]
    assert (reply.get_attribute("aria-label") or "").startswith(expected)
    assert not problems, "\n".join(map(str, problems))
