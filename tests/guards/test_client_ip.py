"""The client address as an attacker or a proxy would meet it: real sockets on loopback."""

from __future__ import annotations

import ipaddress

import gradio as gr
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.request_facts import facts_of
from guards.client_ip import ClientAddressMiddleware, parse_ip, resolve_client
from tests.auth.loopback_server import client_from, serve

SPOOFS = {
    "X-Forwarded-For": "10.9.9.9",
    "X-Real-IP": "10.8.8.8",
    "Forwarded": "for=10.7.7.7;proto=https",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
}


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "client": request.client.host if request.client else None,
            "state": request.state.client_ip,
            "helper": facts_of(request).client_ip,
            "scheme": request.url.scheme,
            "forwarding_headers": sorted(
                k for k in request.headers if k.startswith("x-") or k == "forwarded"
            ),
        }
    )


def make_app(trusted: list[str]) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(ClientAddressMiddleware, trusted_proxies=trusted)],
    )


@pytest.fixture(scope="module")
def direct_url():
    """Nobody trusted except an unrelated proxy range."""
    with serve(make_app(["192.0.2.0/24"])) as url:
        yield url


@pytest.fixture(scope="module")
def proxied_url():
    """127.0.0.2 is our reverse proxy; 10.0.0.0/8 are internal proxy hops."""
    with serve(make_app(["127.0.0.2/32", "10.0.0.0/8"])) as url:
        yield url


def whoami_from(source: str, url: str, headers=None) -> dict:
    with client_from(source, url) as client:
        response = client.get("/whoami", headers=headers)
    assert response.status_code == 200
    return response.json()


def test_direct_peer_with_forged_headers_is_judged_by_its_socket(direct_url):
    seen = whoami_from("127.0.0.2", direct_url, SPOOFS)
    assert seen["client"] == seen["state"] == seen["helper"] == "127.0.0.2"
    assert seen["scheme"] == "http"
    # Downstream code (Gradio's root-URL logic) never sees the forged forwarding headers.
    assert seen["forwarding_headers"] == []


def test_second_client_address_is_told_apart(direct_url):
    assert whoami_from("127.0.0.1", direct_url)["client"] == "127.0.0.1"
    assert whoami_from("127.0.0.2", direct_url)["client"] == "127.0.0.2"


def test_trusted_proxy_gives_right_most_untrusted_hop_not_left_most(proxied_url):
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.5"}
    assert whoami_from("127.0.0.2", proxied_url, chain)["client"] == "203.0.113.7"


def test_untrusted_peer_of_proxied_app_is_not_believed(proxied_url):
    chain = {"X-Forwarded-For": "10.0.0.5"}
    assert whoami_from("127.0.0.1", proxied_url, chain)["client"] == "127.0.0.1"


def test_duplicate_forwarded_for_headers_are_joined_in_order(proxied_url):
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7, 10.0.0.5")]
    assert whoami_from("127.0.0.2", proxied_url, headers)["client"] == "203.0.113.7"
    swapped = [("X-Forwarded-For", "203.0.113.7, 10.0.0.5"), ("X-Forwarded-For", "6.6.6.6")]
    assert whoami_from("127.0.0.2", proxied_url, swapped)["client"] == "6.6.6.6"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("203.0.113.7, garbage, 10.0.0.5", "10.0.0.5"),  # stop at garbage: last trusted hop
        ("203.0.113.7, unknown", "127.0.0.2"),
        ("203.0.113.7,,", "127.0.0.2"),
        ("", "127.0.0.2"),
    ],
)
def test_malformed_entry_stops_at_last_trusted_hop(proxied_url, chain, expected):
    seen = whoami_from("127.0.0.2", proxied_url, {"X-Forwarded-For": chain})
    assert seen["client"] == expected


def test_real_ip_and_forwarded_are_ignored_even_from_the_proxy(proxied_url):
    headers = {"X-Real-IP": "203.0.113.99", "Forwarded": "for=203.0.113.98"}
    seen = whoami_from("127.0.0.2", proxied_url, headers)
    assert seen["client"] == "127.0.0.2"
    assert seen["forwarding_headers"] == []


def test_forwarded_proto_from_trusted_proxy_sets_scheme(proxied_url):
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    assert whoami_from("127.0.0.2", proxied_url, headers)["scheme"] == "https"
    assert whoami_from("127.0.0.1", proxied_url, headers)["scheme"] == "http"


@pytest.mark.parametrize(
    ("hop", "expected"),
    [
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("203.0.113.9:5555", "203.0.113.9"),
    ],
)
def test_ipv6_and_mapped_addresses_are_normalised(proxied_url, hop, expected):
    seen = whoami_from("127.0.0.2", proxied_url, {"X-Forwarded-For": hop})
    assert seen["client"] == expected


def test_ipv6_loopback_peer():
    with serve(make_app([]), host="::1") as url, client_from("::1", url) as client:
        assert client.get("/whoami").json()["client"] == "::1"


def test_ipv4_mapped_trusted_peer_is_recognised():
    networks = (ipaddress.ip_network("10.0.0.0/8"),)
    assert resolve_client("::ffff:10.0.0.1", ["203.0.113.5"], networks) == "203.0.113.5"
    assert parse_ip("[::1") is None


def test_gradio_request_sees_the_resolved_address():
    scope = {
        "type": "http",
        "client": ("203.0.113.7", 0),
        "state": {"client_ip": "203.0.113.7"},
        "headers": [],
    }
    request = gr.Request(request=Request(scope))
    assert facts_of(request).client_ip == "203.0.113.7"
    assert request.client.host == "203.0.113.7"
