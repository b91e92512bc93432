"""When the session ends while the page is open, the page's next call goes to the login page.

Gradio's front end shows nothing useful for a 401 from its API (the session was revoked by an admin,
ended by a logout elsewhere, or timed out): the click just does nothing. This small own-origin
script, which Gradio adds to the page's head from its `head` setting, wraps fetch: a 401 from this
origin sends the browser to the login page, which comes back to the chat (or says why not).
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import Response

SCRIPT_PATH = "/session-watch.js"

_SCRIPT = """(() => {
  const login = %s;
  const fetchFirst = window.fetch.bind(window);
  let leaving = false;
  window.fetch = async (...args) => {
    const response = await fetchFirst(...args);
    const sameOrigin = new URL(response.url || location.href, location.href).origin === location.origin;
    if (response.status === 401 && sameOrigin && !leaving) {
      leaving = true;
      location.assign(login + "?next=" + encodeURIComponent(location.pathname + location.search));
    }
    return response;
  };
})();
"""


def session_watch_router(base_url: str) -> APIRouter:
    """GET /session-watch.js (behind the gate like every page asset)."""
    router = APIRouter()
    body = _SCRIPT % json.dumps(base_url + "/login")

    @router.get(SCRIPT_PATH, include_in_schema=False)
    async def session_watch() -> Response:
        return Response(body, media_type="text/javascript")

    return router


def session_watch_head(base_url: str) -> str:
    """The tag for Gradio's `head`; an own-origin file, so the CSP's script-src 'self' allows it."""
    return f'<script src="{base_url}{SCRIPT_PATH}"></script>'
