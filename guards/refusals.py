"""Refusal responses shared by the network middlewares: an HTML page for browsers, JSON otherwise.

The page speaks the browser's language (Accept-Language: Chinese or English, guards.refusal_text);
JSON keeps the English sentence, which scripts may match on. Each refusal is logged as one line with
the client's address; the log handler lets a few such lines per address through each minute
(webui.log_throttle), so a flood of refusals stays quiet."""

from __future__ import annotations

import html
import logging

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Scope, Send

from core.app_path import app_path
from core.locale import locale_of
from core.request_facts import facts_of
from guards.refusal_text import DEFAULT_TITLE, REFUSAL_TEXT, TITLES

log = logging.getLogger("chat.guards")

_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1 style="font-size: 1.4rem">{title}</h1><p>{message}</p></body></html>
"""


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
        return HTMLResponse(
            refusal_page(locale_of(scope), status, message),
            status_code=status,
            headers={**(headers or {}), "Vary": "Accept-Language"},
        )
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def refusal_page(locale: str, status: int, message: str) -> str:
    """The HTML of a refusal in `locale` ("en" or "zh-CN")."""
    title = REFUSAL_TEXT.translate(TITLES.get(status, DEFAULT_TITLE), locale)
    return _PAGE.format(
        lang=locale,
        title=html.escape(title),
        message=html.escape(REFUSAL_TEXT.translate(message, locale)),
    )


def log_refusal(scope: Scope, status: int, reason: str | None = None) -> None:
    """One line per refused request: the address, status, path (never the query) and reason."""
    extra = {"ip": facts_of(scope).client_ip, "status": status, "path": app_path(scope)[:200]}
    log.warning("request refused", extra=extra if reason is None else {**extra, "reason": reason})


async def close_websocket(send: Send) -> None:
    """Refuse a WebSocket handshake (the server answers 403 when closed before accept)."""
    await send({"type": "websocket.close", "code": 1008})
