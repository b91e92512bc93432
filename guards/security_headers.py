"""Security headers for every response, with a Content-Security-Policy that Gradio 6 works under.

Gradio's page template has inline <script> blocks whose content changes per request (the config),
so hashes cannot work; each HTML response gets a fresh nonce added to its <script> tags instead.
Injected markup in the page (say, a sanitiser miss in rendered model output) then cannot run
inline handlers or scripts. Styles need 'unsafe-inline' (Svelte sets style attributes), and the
chat components need no eval. Put GZip *outside* this middleware: for an encoded HTML body the
nonce cannot be added, and the policy falls back to 'unsafe-inline' scripts for that response.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])(?![^>]*\snonce=)", re.IGNORECASE)

PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), "
    "interest-cohort=(), browsing-topics=()"
)


def content_security_policy(script_source: str, form_action: Iterable[str] = ()) -> str:
    """The policy; `script_source` is a nonce source or 'unsafe-inline'."""
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' {script_source}",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "media-src": "'self' data: blob:",
        "connect-src": "'self'",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "frame-ancestors": "'none'",
        # Logout posts a form that redirects to the IdP; browsers check redirects against this.
        "form-action": " ".join(["'self'", *form_action]),
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, https: bool, form_action: Iterable[str] = ()) -> None:
        self.app = app
        self.https = https
        self.form_action = tuple(form_action)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if scope["method"] != "HEAD" and _rewritable_html(headers):
                    start = message  # hold until the whole page is here to add nonces
                    return
                self._add_headers(headers, "'unsafe-inline'")
                await send(message)
            elif start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_page(start, b"".join(chunks), send)
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _send_page(self, start: Message, body: bytes, send: Send) -> None:
        nonce = secrets.token_urlsafe(18)
        body = _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', body)
        headers = MutableHeaders(scope=start)
        headers["Content-Length"] = str(len(body))
        self._add_headers(headers, f"'nonce-{nonce}'")
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _add_headers(self, headers: MutableHeaders, script_source: str) -> None:
        headers["Content-Security-Policy"] = content_security_policy(
            script_source, self.form_action
        )
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers["Permissions-Policy"] = PERMISSIONS_POLICY
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if self.https:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"


def _rewritable_html(headers: MutableHeaders) -> bool:
    return headers.get("content-type", "").startswith("text/html") and (
        headers.get("content-encoding", "identity") == "identity"
    )
