"""Refusal responses shared by the network middlewares: an HTML page for browsers, JSON otherwise.

Each refusal is logged as one line with the client's address; the log handler lets a few such
lines per address through each minute (webui.log_throttle), so a flood of refusals stays quiet."""

from __future__ import annotations

import html
import logging

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Scope, Send

from core.app_path import app_path
from core.request_facts import facts_of

log = logging.getLogger("chat.guards")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>{title}</h1><p>{message}</p></body></html>
"""

_TITLES = {
    403: "Access refused",
    413: "Request too large",
    429: "Too many requests",
    503: "Temporarily unavailable",
}


def wants_html(scope: Scope) -> bool:
    """True for browser navigation (Accept lists text/html); scripts and XHR get JSON."""
    return "text/html" in Headers(scope=scope).get("accept", "")


def refusal(
    scope: Scope,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    json_only: bool = False,
    reason: str | None = None,
) -> Response:
    """Build the response for a refused request; `message` must say what the user can do."""
    log_refusal(scope, status, reason)
    if wants_html(scope) and not json_only:
        title = _TITLES.get(status, "Request refused")
        page = _PAGE.format(title=html.escape(title), message=html.escape(message))
        return HTMLResponse(page, status_code=status, headers=headers)
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def log_refusal(scope: Scope, status: int, reason: str | None = None) -> None:
    """One line per refused request: the address, status, path (never the query) and reason."""
    extra = {"ip": facts_of(scope).client_ip, "status": status, "path": app_path(scope)[:200]}
    log.warning("request refused", extra=extra if reason is None else {**extra, "reason": reason})


async def close_websocket(send: Send) -> None:
    """Refuse a WebSocket handshake (the server answers 403 when closed before accept)."""
    await send({"type": "websocket.close", "code": 1008})
