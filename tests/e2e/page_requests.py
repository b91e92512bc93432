"""Every request a browser page makes, to check that nothing leaves this machine."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from playwright.sync_api import Page


def is_loopback(url: str) -> bool:
    """True for this machine (loopback addresses, localhost) and for URLs that fetch nothing."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def record_requests(page: Page) -> list[str]:
    """A list that fills with the URL of every request `page` makes from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def foreign(requested: list[str]) -> list[str]:
    """The requests that went to another host."""
    return [url for url in requested if not is_loopback(url)]
