"""Security headers, and a CSP that a real browser runs a mounted Gradio 6 page under without errors."""

from __future__ import annotations

import re

import gradio as gr
import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import expect, sync_playwright
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.audit import MemoryAuditSink
from guards.client_ip import ClientAddressMiddleware
from guards.origin_check import OriginCheckMiddleware, allowed_origins, cors_middleware
from guards.security_headers import SecurityHeadersMiddleware
from tests.auth.loopback_server import serve_built
from tests.own_thread import in_own_thread

PAGE = '<html><head><script>var a = 1;</script><script src="/app.js"></script></head></html>'


async def page(request):
    return HTMLResponse(PAGE)


async def text(request):
    return PlainTextResponse("plain")


def client(https: bool) -> TestClient:
    app = Starlette(
        routes=[Route("/", page), Route("/text", text)],
        middleware=[Middleware(SecurityHeadersMiddleware, https=https)],
    )
    return TestClient(app)


def csp_of(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_framing_sniffing_and_referrer_headers_everywhere():
    for path in ("/", "/text"):
        response = client(https=False).get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "camera=()" in response.headers["permissions-policy"]
        assert csp_of(response)["frame-ancestors"] == "'none'"
        assert csp_of(response)["object-src"] == "'none'"


def test_hsts_only_when_public_url_is_https():
    assert "strict-transport-security" not in client(https=False).get("/").headers
    hsts = client(https=True).get("/").headers["strict-transport-security"]
    assert hsts.startswith("max-age=31536000")


def test_each_page_gets_a_fresh_nonce_on_its_scripts():
    first, second = client(https=False).get("/"), client(https=False).get("/")
    nonces = []
    for response in (first, second):
        script_src = csp_of(response)["script-src"]
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        nonce = re.search(r"'nonce-([^']+)'", script_src).group(1)
        assert response.text.count(f'<script nonce="{nonce}"') == 2
        assert int(response.headers["content-length"]) == len(response.content)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def greet(name: str, request: gr.Request) -> str:
    return f"Hello {name} from {request.client.host}!"


def gradio_stack(public_url: str) -> Starlette:
    """The network middlewares around a mounted Gradio app, as the lead will assemble them."""
    app = FastAPI(middleware=[cors_middleware(())])
    with gr.Blocks() as demo:
        name = gr.Textbox(label="Name", elem_id="name")
        greeting = gr.Textbox(label="Greeting", elem_id="greeting")
        gr.Button("Greet", elem_id="greet").click(greet, name, greeting)
    app = gr.mount_gradio_app(app, demo, path="/", ssr_mode=False)
    app.add_middleware(
        OriginCheckMiddleware, allowed=allowed_origins(public_url), audit=MemoryAuditSink()
    )
    app.add_middleware(SecurityHeadersMiddleware, https=False)
    # The browser plays the proxy: 127.0.0.1 is trusted, so its X-Forwarded-For names the client.
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=["127.0.0.1/32"])
    return app


@pytest.fixture(scope="module")
def gradio_url():
    with serve_built(gradio_stack, lifespan="on") as url:
        yield url


def test_gradio_page_sources_are_all_allowed(gradio_url):
    response = httpx.get(gradio_url + "/")
    nonce = re.search(r"'nonce-([^']+)'", csp_of(response)["script-src"]).group(1)
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)
    # Every script and stylesheet is same-origin; 'self' covers them.
    for src in re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="([^"]+)"', response.text):
        assert not re.match(r"(https?:)?//", src), src


def test_gradio_runs_in_a_real_browser_under_the_policy(gradio_url):
    in_own_thread(browse_under_the_policy, gradio_url)  # the browser tests' loop holds the main


def browse_under_the_policy(gradio_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            refusals: list[str] = []
            page.on("console", lambda m: refusals.append(m.text) if "Refused" in m.text else None)
            page.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page.set_extra_http_headers({"X-Forwarded-For": "203.0.113.50"})
            page.goto(gradio_url + "/")
            page.locator("#name textarea").fill("Ada")
            page.locator("#greet").click()  # a POST to queue/join: passes the Origin check too
            # gr.Request in the queued handler sees the address ClientAddressMiddleware decided.
            expect(page.locator("#greeting textarea")).to_have_value(
                "Hello Ada from 203.0.113.50!", timeout=20_000
            )
            assert page.evaluate("window.__csp") == []
            assert refusals == []
        finally:
            browser.close()
