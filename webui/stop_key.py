"""Esc stops the running reply, as the Stop button does.

The page's CSP forbids inline script, so the listener is an own-origin script in the page's head
(script-src 'self'). It presses Stop only while Stop is shown, and never while an input method is
composing (there Esc cancels the composition, as people typing Chinese expect).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

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
    router = APIRouter()

    @router.get(SCRIPT_PATH, include_in_schema=False)
    async def stop_key() -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    return router


def stop_key_head(base_url: str) -> str:
    """The tag for Gradio's `head`."""
    return f'<script src="{base_url}{SCRIPT_PATH}"></script>'
