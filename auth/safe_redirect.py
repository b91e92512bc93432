"""Where to send the browser after login: only a same-origin relative path, never anything that could
leave the site (`//evil`, `/\\evil`, `/%09/evil`, `https://evil`, look-alike hosts)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

DEFAULT_TARGET = "/"
_MAX_LENGTH = 2048


def _looks_external(path: str) -> bool:
    # Browsers drop tabs/newlines and treat "\" as "/", so any of them can turn "/x" into "//host".
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\\" for ch in path):
        return True
    if not path.startswith("/") or path.startswith("//"):
        return True
    parts = urlsplit(path)
    return bool(parts.scheme or parts.netloc)


def safe_next_path(raw: str | None) -> str:
    """Return `raw` if it is an app-relative path like "/c/1?x=2", else "/"."""
    if not raw or len(raw) > _MAX_LENGTH:
        return DEFAULT_TARGET
    candidate = raw
    # Check every percent-decoding layer: a proxy or the browser may decode once more.
    for _ in range(4):
        if _looks_external(candidate):
            return DEFAULT_TARGET
        decoded = unquote(candidate)
        if decoded == candidate:
            return raw
        candidate = decoded
    return DEFAULT_TARGET  # still changing after several decodings: not a path a user typed
