"""The page loads the session-watch script from its own origin; the script knows where login is."""

from __future__ import annotations

import httpx

BROWSER = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}


def test_the_page_loads_the_session_watch_script_under_the_policy(chat_server):
    chat = chat_server()
    alice = chat.login("alice")
    try:
        # Gradio adds `head` to the page from its config; 'self' in script-src allows the file.
        head = alice.get("/config").json()["head"]
        assert f'<script src="{chat.url}/session-watch.js"></script>' in head
        policy = alice.get("/", headers=BROWSER).headers["content-security-policy"]
        assert "script-src 'self'" in policy
        script = alice.get("/session-watch.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert f'"{chat.url}/login"' in script.text and "401" in script.text
    finally:
        alice.close()
    anonymous = httpx.get(chat.url + "/session-watch.js", timeout=10)
    assert anonymous.status_code == 401  # like every page asset, behind the gate
