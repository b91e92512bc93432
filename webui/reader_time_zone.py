"""The reader's time zone, so the history's Today / Yesterday / Earlier and its dates are the
reader's days, not UTC's.

A small own-origin script in the page's head (before Gradio's page load event, so the first render
has it) stores the browser's IANA zone (`Intl.DateTimeFormat().resolvedOptions().timeZone`) in the
`tz` cookie. The server trusts nothing in it: a value that is not a short IANA-shaped name, or that
zoneinfo does not know, means UTC, never an error. It only chooses how dates are shown.
"""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter

from webui.page_scripts import script_route, script_tag

COOKIE = "tz"
SCRIPT_PATH = "/time-zone.js"
MAX_LENGTH = 64  # the longest IANA name is 32 characters
# Area/Location names: letters, digits, _ + -, at most three parts; no dots, so no "..".
_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}")
# Files in the zone folder that are no reader's zone ("localtime" is the server's own).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})

# The cookie's name and the length limit are COOKIE and MAX_LENGTH's.
_SCRIPT = """(() => {
  let zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  if (!/^[A-Za-z0-9_+\\-\\/]{1,64}$/.test(zone)) return;
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "tz=" + zone + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
})();
"""


def time_zone_router() -> APIRouter:
    """GET /time-zone.js: the script that stores the browser's zone in the `tz` cookie."""
    return script_route(SCRIPT_PATH, _SCRIPT)


def time_zone_head(base_url: str) -> str:
    """The tag for Gradio's `head`."""
    return script_tag(base_url, SCRIPT_PATH)


def zone_named(value: str | None) -> tzinfo:
    """The zone a cookie names; UTC for anything missing, malformed, overlong or unknown."""
    if not value or len(value) > MAX_LENGTH or not _SHAPE.fullmatch(value) or value in _NOT_ZONES:
        return UTC
    return _load(value)


@lru_cache(maxsize=512)  # keys are short, checked names: the cache cannot be flooded with junk
def _load(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, or a folder such as "Asia"
        return UTC


def reader_zone(request: Any) -> tzinfo:
    """The zone of a gr.Request or Starlette request (its `tz` cookie); UTC without one."""
    cookies = getattr(request, "cookies", None) or {}
    value = cookies.get(COOKIE) if hasattr(cookies, "get") else None
    return zone_named(value if isinstance(value, str) else None)
