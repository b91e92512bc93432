"""Cross-origin requests as a foreign website would make them: CORS never reflected, CSRF refused."""

from __future__ import annotations

import gradio as gr
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from core.audit import ACCESS_DENIED, MemoryAuditSink
from guards.origin_check import (
    OriginCheckMiddleware,
    allowed_origins,
    cors_middleware,
    origin_of,
)
from guards.settings import AccessSettings

PUBLIC_URL = "https://chat.example.com"
PARTNER = "https://portal.example.com"
EVIL = "https://evil.example"


def gradio_app(with_our_cors: bool, extra=()) -> FastAPI:
    app = FastAPI(middleware=[cors_middleware(extra)] if with_our_cors else [])
    with gr.Blocks() as demo:
        gr.Textbox()
    return gr.mount_gradio_app(app, demo, path="/", ssr_mode=False)


def test_gradio_alone_would_reflect_a_foreign_origin():
    """The hole we close: without our CORSMiddleware, Gradio echoes any Origin with credentials."""
    response = TestClient(gradio_app(with_our_cors=False)).get("/config", headers={"Origin": EVIL})
    assert response.headers.get("access-control-allow-origin") == EVIL


@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_foreign_and_null_origins_are_not_reflected(origin):
    client = TestClient(gradio_app(with_our_cors=True, extra=[PARTNER]))
    simple = client.get("/config", headers={"Origin": origin})
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(
        "/gradio_api/queue/join",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_partner_origin_is_allowed():
    client = TestClient(gradio_app(with_our_cors=True, extra=[PARTNER]))
    response = client.get("/config", headers={"Origin": PARTNER})
    assert response.headers["access-control-allow-origin"] == PARTNER


def test_settings_refuse_wildcard_and_null():
    for bad in ("*", "null", "https://x.example/path", "ftp://x.example"):
        with pytest.raises(ValueError):
            AccessSettings(allow_origins=(bad,))
    assert AccessSettings(allow_origins=("HTTPS://Portal.Example.com:443",)).allow_origins == (
        PARTNER,
    )


async def change(request):
    return PlainTextResponse("changed")


def csrf_client(audit: MemoryAuditSink) -> TestClient:
    app = Starlette(
        routes=[Route("/change", change, methods=["GET", "POST", "DELETE"])],
        middleware=[
            Middleware(
                OriginCheckMiddleware,
                allowed=allowed_origins(PUBLIC_URL + "/chat", [PARTNER]),
                audit=audit,
            )
        ],
    )
    return TestClient(app, base_url=PUBLIC_URL, client=("10.0.0.4", 1))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": PUBLIC_URL}, 200),
        ({"Origin": "https://chat.example.com:443"}, 200),
        ({"Origin": PARTNER}, 200),
        ({}, 200),  # scripts: no Origin, no Referer
        ({"Referer": PUBLIC_URL + "/chat/?x=1"}, 200),
        ({"Origin": EVIL}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "http://chat.example.com"}, 403),  # scheme downgrade
        ({"Origin": "https://chat.example.com.evil.example"}, 403),
        ({"Referer": EVIL + "/page"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": EVIL, "Referer": PUBLIC_URL + "/"}, 403),  # Origin wins
        ({"Referer": "http://["}, 403),  # unparsable (an unclosed IPv6 host): refused, not a 500
        ({"Origin": "http://["}, 403),
    ],
)
def test_state_changing_requests_from_foreign_origins_are_refused(headers, status):
    audit = MemoryAuditSink()
    client = csrf_client(audit)
    assert client.post("/change", headers=headers).status_code == status
    assert client.delete("/change", headers=headers).status_code == status
    assert len(audit.of_type(ACCESS_DENIED)) == (2 if status == 403 else 0)


def test_refusal_explains_and_reads_are_untouched():
    audit = MemoryAuditSink()
    client = csrf_client(audit)
    refused = client.post("/change", headers={"Origin": EVIL})
    assert "came from another website" in refused.json()["detail"]
    assert audit.events[0].outcome == "foreign_origin" and audit.events[0].ip == "10.0.0.4"
    assert client.get("/change", headers={"Origin": EVIL}).status_code == 200


def test_foreign_websocket_handshake_is_refused():
    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws", ws)],
        middleware=[
            Middleware(
                OriginCheckMiddleware, allowed=allowed_origins(PUBLIC_URL), audit=MemoryAuditSink()
            )
        ],
    )
    client = TestClient(app)
    with client.websocket_connect("/ws", headers={"Origin": PUBLIC_URL}) as socket:
        assert socket.receive_text() == "hi"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/ws", headers={"Origin": EVIL}),
    ):
        pass


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://chat.example.com/chat/?x=1#y", "https://chat.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://idp.example.com/realms/corp/", "https://idp.example.com"),
        ("http://[", None),  # an unclosed IPv6 host
        ("//chat.example.com/x", None),  # no scheme
        ("http:///x", None),  # no host
        ("chat.example.com", None),
    ],
)
def test_one_origin_parser_for_the_public_url_the_issuer_and_referers(url, origin):
    assert origin_of(url) == origin
