"""Bind each Gradio session hash to the first user who uses it.

Gradio keys queue/data, heartbeat, cancel and reset on a browser-chosen `session_hash` only, so a user
who learns another's hash could read or cancel that stream. The gate records the owner at first use
and refuses anyone else with 403. This file finds the hash in a request and stores the bindings.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message

MAX_BODY_BYTES = 8 * 1024 * 1024  # bodies we buffer to read a session hash (chat history included)

# Gradio routes that carry a session hash in the path; the mount prefix may be anything.
_PATH_HASH = re.compile(r"/gradio_api/(?:heartbeat/([^/]+)|stream/([^/]+)/[^/]+/[^/]+/[^/]+)$")
# Routes whose body may name a session hash (JSON, or a form for component_server blobs).
_BODY_ROUTES = re.compile(
    r"/gradio_api/(?:queue/join|cancel|reset|component_server|stream/[^/]+)/?$"
)


class SessionHashBindings(Protocol):
    def claim(self, session_hash: str, user_key: str, now: datetime) -> bool:
        """True if `session_hash` is unbound (it becomes `user_key`'s) or already `user_key`'s."""
        ...


class MemorySessionHashBindings:
    """One-process bindings with a sliding TTL; expired entries are swept as new ones arrive."""

    def __init__(self, ttl: timedelta, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._owners: dict[str, tuple[str, datetime]] = {}

    def claim(self, session_hash: str, user_key: str, now: datetime) -> bool:
        with self._lock:
            current = self._owners.get(session_hash)
            if current is not None and current[1] > now and current[0] != user_key:
                return False
            if current is None and len(self._owners) >= self._max_entries:
                self._owners = {k: v for k, v in self._owners.items() if v[1] > now}
                if len(self._owners) >= self._max_entries:
                    return False  # full of live bindings: refuse rather than forget an owner
            self._owners[session_hash] = (user_key, now + self._ttl)
            return True


def hashes_in_path_and_query(
    path: str, query_string: bytes, headers: Mapping[str, str]
) -> set[str]:
    """Session hashes named by the URL path, the query string or Gradio's upload header."""
    found: set[str] = set()
    match = _PATH_HASH.search(path)
    if match:
        found.add(match.group(1) or match.group(2))
    if "/gradio_api/" in path or path.endswith("/gradio_api"):
        query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        found.update(query.get("session_hash", []))
        if headers.get("session_hash"):
            found.add(headers["session_hash"])
    return found


def body_may_name_hash(path: str, method: str) -> bool:
    return method == "POST" and _BODY_ROUTES.search(path) is not None


async def hash_in_body(body: bytes, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The session hash a JSON or form body names, or None."""
    content_type = Headers(raw=headers).get("content-type", "").lower()  # first one, as Starlette
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
        try:
            async with request.form() as form:
                value = form.get("session_hash")
        except Exception:  # malformed forms are Gradio's to reject
            return None
        return value if isinstance(value, str) else None
    # Anything that is not a form is read as JSON, as FastAPI may parse it whatever its content type says.
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None  # Gradio answers 422 itself; nothing to bind
    value = data.get("session_hash") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
