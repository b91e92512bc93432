"""Accessibility of the chat, API tokens and audit tabs, checked by axe-core (npm, tests/e2e/axe) in
Chromium: no violation that axe rates serious or critical, with a conversation on screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.chat_app import ChatApp
from tests.e2e.chat_pages import ChatPage, sign_in_to_chat
from tests.e2e.harness import ADMIN, Idp
from tests.e2e.idp_pages import Screenshot

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def violations(page: Page) -> list[dict]:
    """axe's serious and critical violations on what the page shows now (hidden tabs excluded)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the page's CSP (rightly) refuses script tags.
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING]


@pytest.fixture
def admin(page: Page, idp: Idp, chat_app: ChatApp) -> ChatPage:
    chat = sign_in_to_chat(page, idp, chat_app.url, ADMIN)
    chat.send("Hello, what can you do?").wait_done()
    return chat


@pytest.mark.parametrize("tab", ["Chat", "API tokens", "Audit"])
def test_no_serious_or_critical_accessibility_violations(
    admin: ChatPage, tab: str, screenshot: Screenshot
) -> None:
    if tab != "Chat":
        admin.tab(tab).click()
        admin.page.wait_for_timeout(500)  # the tab's contents render
    found = violations(admin.page)
    screenshot(admin.page, f"accessibility-{tab.replace(' ', '-').lower()}")
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)
