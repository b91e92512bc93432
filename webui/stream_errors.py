"""No exception text in Gradio's event stream: its unexpected-error message gets a readable sentence.

Gradio 6.31's queue/data stream sends `{"msg": "unexpected_error", "message": str(exception)}` for
any exception it meets while streaming, cancellations included: at shutdown that is "Cancelled via
cancel scope ... by <Task ... /uvicorn/protocols/...>", internal paths and task names. This wraps
the Gradio app and rewrites those messages on their way out: the client reads a short sentence in
its language with the request id, and the original goes to one log line.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.locale import locale_of
from core.request_facts import facts_of
from webui.i18n import text

log = logging.getLogger("chat.gradio")

_STREAM_PATH = "/gradio_api/queue/data"
_PREFIX = b"data: "


class StreamErrorFilter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").endswith(_STREAM_PATH):
            await self.app(scope, receive, send)
            return
        locale = locale_of(scope)
        request_id = facts_of(scope).request_id
        pending = b""

        async def send_filtered(message: Message) -> None:
            nonlocal pending
            if message["type"] != "http.response.body":
                await send(message)
                return
            # Events end with a blank line; a chunk may hold several or end mid-event.
            pending += message.get("body", b"")
            more = message.get("more_body", False)
            complete, _, rest = pending.rpartition(b"\n\n")
            if not more:
                complete, rest = pending, b""
            elif complete:
                complete += b"\n\n"
            pending = rest
            body = _rewrite(complete, locale, request_id)
            await send({**message, "body": body})

        await self.app(scope, receive, send_filtered)


def _rewrite(events: bytes, locale: str, request_id: str | None) -> bytes:
    if b"unexpected_error" not in events:
        return events
    lines = []
    for line in events.split(b"\n"):
        if line.startswith(_PREFIX):
            line = _readable(line, locale, request_id)
        lines.append(line)
    return b"\n".join(lines)


def _readable(line: bytes, locale: str, request_id: str | None) -> bytes:
    try:
        event = json.loads(line[len(_PREFIX) :])
    except ValueError:
        return line
    if not isinstance(event, dict) or event.get("msg") != "unexpected_error":
        return line
    log.warning(
        "the Gradio stream ended with an unexpected error",
        extra={"error": str(event.get("message"))[:500], "request_id": request_id},
    )
    event["message"] = text("stream_failed", locale, reference=request_id or "-")
    return _PREFIX + json.dumps(event).encode()
