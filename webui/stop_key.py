"""Esc stops the running reply, as the Stop button does.

The page's CSP forbids inline script, so the listener is an own-origin script in the page's head
(script-src 'self'). It presses Stop only while Stop is shown, and never while an input method is
composing (there Esc cancels the composition, as people typing Chinese expect).
"""

from __future__ import annotations

from fastapi import APIRouter

from webui.page_scripts import script_route, script_tag

SCRIPT_PATH = "/stop-key.js"

_SCRIPT = """(() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || event.defaultPrevented) return;
    const stop = document.getElementById("stop");
    if (!stop || !stop.checkVisibility()) return;
    event.preventDefault();
    stop.click();
  });
})();
"""


def stop_key_router() -> APIRouter:
    """GET /stop-key.js: the page's Esc listener."""
    return script_route(SCRIPT_PATH, _SCRIPT)


def stop_key_head(base_url: str) -> str:
    """The tag for Gradio's `head`."""
    return script_tag(base_url, SCRIPT_PATH)
