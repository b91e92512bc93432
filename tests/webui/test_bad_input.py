"""Malformed requests to the app's own routes get a clear 4xx, never a 500 or a printed traceback."""

from __future__ import annotations

import base64

import httpx
import pytest


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


DEEP = b"[" * 50_000 + b"]" * 50_000
SIGNED_OUT = [
    (
        "POST",
        "/auth/backchannel-logout",
        {"data": {"logout_token": f"{b64(DEEP)}.{b64(b'{}')}.x"}},
        400,
    ),
    ("POST", "/auth/backchannel-logout", {"data": {"logout_token": "a.b.c"}}, 400),
    ("POST", "/auth/backchannel-logout", {"data": {"logout_token": ["a", "b"]}}, 400),
    (
        "POST",
        "/auth/backchannel-logout",
        {"content": b"\xff\xfe", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        400,
    ),
    ("GET", "/auth/callback?state=%C3%A9&code=x", {}, 400),
    ("GET", "/auth/callback?state=%ff&code=%ff", {}, 400),
    ("POST", "/logout", {"headers": {"referer": "http://["}}, 403),
]
SIGNED_IN = [
    ("POST", "/logout", {"headers": {"referer": "http://["}}, 403),
    ("POST", "/logout", {"headers": {"origin": "http://["}}, 403),
    ("GET", "/export/%ff.md", {}, 404),
    ("GET", "/export/" + "a" * 5000 + ".md", {}, 404),
    ("GET", "/export/abc.exe", {}, 404),
    ("GET", "/admin/audit.csv?since=garbage", {}, 400),
    ("GET", "/?page=x", {}, 404),
    ("GET", "/static/%00", {}, 404),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), SIGNED_OUT + SIGNED_IN)
def test_malformed_requests_get_a_clear_4xx(chat_server, capfd, method, path, kwargs, status):
    chat = chat_server()
    signed_in = (method, path, kwargs, status) in SIGNED_IN
    client = chat.login("alice") if signed_in else httpx.Client(base_url=chat.url)
    response = client.request(method, path, timeout=10, **kwargs)
    assert response.status_code == status, response.text[:300]
    assert response.text.strip()  # a message, in JSON or a page
    assert "Traceback" not in "".join(capfd.readouterr())
