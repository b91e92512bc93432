"""Cross-origin defences: refuse state-changing requests from foreign pages, and a strict CORS policy.

Requests with neither Origin nor Referer are allowed: browsers attach Origin to every cross-site
POST/PUT/PATCH/DELETE (fetch, XHR and forms), so such a request did not come from another site's
page riding on a victim's cookies; scripts (gradio_client) send no Origin and authenticate with a
bearer token that a foreign page cannot attach.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.audit import ACCESS_DENIED, AuditEvent, AuditSink
from core.blocking_io import run_blocking
from core.request_facts import facts_of
from guards.refusals import close_websocket, log_refusal, refusal
from guards.settings import normalise_origin_setting

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an absolute URL, as written there; None if it names no origin."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 host)
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def allowed_origins(public_url: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The public URL's origin plus the configured allowlist, normalised; never "*" or "null"."""
    own = origin_of(public_url)
    if own is None:
        raise ValueError(f"{public_url!r} is not an absolute URL")
    return frozenset(normalise_origin_setting(o) for o in (own, *extra))


def _request_origin(headers: Headers) -> str | None:
    """The Origin header, else the Referer's origin; "" means present but unusable."""
    origin = headers.get("origin")
    try:
        if origin is None:
            referer = headers.get("referer")
            if referer is None:
                return None
            origin = origin_of(referer)
            if origin is None:
                return ""
        return normalise_origin_setting(origin.strip())
    except ValueError:
        return ""  # "null", garbage or a non-http scheme: never allowed


class OriginCheckMiddleware:
    """403 for state-changing requests (and WebSocket handshakes) from a foreign origin."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], audit: AuditSink) -> None:
        self.app = app
        self.allowed = frozenset(normalise_origin_setting(o) for o in allowed)
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        checked = scope["type"] == "websocket" or (
            scope["type"] == "http" and scope["method"] in STATE_CHANGING
        )
        if not checked:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = _request_origin(headers)
        cross_site = headers.get("sec-fetch-site") == "cross-site"
        if (origin is None and not cross_site) or origin in self.allowed:
            await self.app(scope, receive, send)
            return
        facts = facts_of(scope)
        event = AuditEvent(
            ACCESS_DENIED,
            actor=facts.user_key,
            ip=facts.client_ip,
            target=scope.get("path"),
            outcome="foreign_origin",
            details={"origin": origin},
        )
        await run_blocking(self.audit.record, event)
        reason = f"foreign origin {(origin or 'cross-site')[:100]!r}"
        if scope["type"] == "websocket":
            log_refusal(scope, 403, reason)
            await close_websocket(send)
            return
        message = (
            "This request came from another website and was refused. Use the chat page itself."
        )
        await refusal(scope, 403, message, json_only=True, reason=reason)(scope, receive, send)


def cors_middleware(extra_origins: Iterable[str]) -> Middleware:
    """Starlette's CORSMiddleware for the parent app's middleware list.

    Only the configured extra origins get CORS headers (same-origin needs none). Installing it on the
    parent app is also what makes Gradio's origin-reflecting CustomCORSMiddleware stand down.
    """
    origins = sorted(normalise_origin_setting(o) for o in extra_origins)
    return Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=bool(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
